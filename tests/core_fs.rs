//! Core tests of the filesystem operations (no FUSE mount): `nifuse::fs::Fs`
//! on a temporary SOURCE, called as the FUSE adapter would call it.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{bytes, gzip, nifti1};
use nifuse::attr::Kind;
use nifuse::cache::Mode;
use nifuse::fs::{Config, Fs};
use nifuse::handle::DirEntry;
use nifuse::xattr::{NAMES, XattrValue};

const ROOT: u64 = 1;
/// Bytes per volume of the 4x5x6 int16 test images.
const VOL: usize = 4 * 5 * 6 * 2;
const BUDGET: u64 = 1 << 30;

// ---------------------------------------------------------------- helpers

/// An int16 image of `dims` with pseudo-random voxels: (file bytes, voxel bytes).
fn image(dims: &[i16], seed: u64, intent: i16) -> (Vec<u8>, Vec<u8>) {
    let n: usize = dims.iter().map(|&d| d as usize).product::<usize>() * 2;
    let data = bytes(n, seed);
    (nifti1(dims, 4, 16, intent, &data), data)
}

/// What `vol_K.nii` of a `common::nifti1` source must hold: the source header
/// with dim[0] = 3, dim[4..7] = 1, intent 2001 cleared, then volume k's bytes.
fn expected_volume(file: &[u8], vol_bytes: usize, k: usize) -> Vec<u8> {
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
fn filled(f: &Fs, name: &str) -> bool {
    let start = std::time::Instant::now();
    while !f.in_memory(Path::new(name)) {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn config(mode: Mode, budget: u64) -> Config {
    Config {
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

struct Src {
    tmp: tempfile::TempDir,
}

impl Src {
    fn new(fill: impl FnOnce(&Path)) -> Src {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("src")).unwrap();
        fill(&tmp.path().join("src"));
        Src { tmp }
    }
    fn dir(&self) -> std::path::PathBuf {
        self.tmp.path().join("src")
    }
    fn fs(&self, mode: Mode) -> Fs {
        Fs::new(&self.dir(), config(mode, BUDGET)).expect("Fs::new")
    }
}

fn errno<T: std::fmt::Debug>(r: nifuse::Result<T>) -> i32 {
    r.expect_err("expected an error").errno()
}

/// Looks up a `/`-separated path from the root, counting one lookup per component.
fn walk(f: &Fs, path: &str) -> u64 {
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
fn list(f: &Fs, ino: u64) -> Vec<DirEntry> {
    let fh = f.opendir(ino).expect("opendir");
    let v = f.readdir(fh, 0).expect("readdir");
    f.release(fh);
    v
}

fn names(v: &[DirEntry]) -> Vec<String> {
    let mut n: Vec<String> = v.iter().map(|e| e.name.to_string_lossy().into_owned()).collect();
    n.sort();
    n
}

/// The whole contents of file `ino`, through open/read/release.
fn read_all(f: &Fs, ino: u64) -> Vec<u8> {
    let fh = f.open(ino, libc::O_RDONLY).expect("open").fh;
    let out = f.read(fh, 0, 1 << 24).expect("read");
    f.release(fh);
    out
}

fn xattr(f: &Fs, ino: u64, name: &str) -> String {
    match f.getxattr(ino, OsStr::new(name), 4096).unwrap_or_else(|e| panic!("getxattr {name}: {e}")) {
        XattrValue::Data(d) => String::from_utf8(d).unwrap(),
        XattrValue::Size(n) => panic!("getxattr {name} with a buffer returned a size {n}"),
    }
}

fn standard_source(src: &Path) {
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

#[test]
fn root_listing_lookup_and_inodes() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let root = list(&f, ROOT);
    assert_eq!(
        names(&root),
        [
            ".", "..", ".nifuse", "a.nii", "a.nii.d", "b.nii.gz", "b.nii.gz.d", "bad.nii", "dir.nii",
            "five.nii", "five.nii.d", "link.nii", "link.nii.d", "notes.txt", "out.nii", "sub", "x.nii",
            "x.nii.d"
        ]
    );
    let by_name = |n: &str| root.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(by_name(".").ino, ROOT);
    assert_eq!(by_name("a.nii.d").kind, Kind::Dir);
    assert_eq!(by_name("a.nii").kind, Kind::File);
    assert_eq!(by_name("link.nii").kind, Kind::Symlink);
    assert_eq!(by_name(".nifuse").kind, Kind::Dir);
    let inos: HashSet<u64> = root.iter().filter(|e| e.name != "..").map(|e| e.ino).collect();
    assert_eq!(inos.len(), root.len() - 1, "distinct inode numbers: {root:?}");

    // Lookups agree with the listing and are stable.
    for name in ["a.nii", "a.nii.d", "b.nii.gz.d", "notes.txt", "sub", "x.nii.d", ".nifuse", "link.nii.d"] {
        let e1 = f.lookup(ROOT, OsStr::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let e2 = f.lookup(ROOT, OsStr::new(name)).unwrap();
        assert_eq!(e1.attr.ino, e2.attr.ino, "{name}: stable inode");
        assert_eq!(e1.attr.ino, by_name(name).ino, "{name}: lookup and readdir agree");
        assert_eq!(e1.attr.kind, by_name(name).kind, "{name}");
        assert_eq!(f.getattr(e1.attr.ino).unwrap().attr, e1.attr, "{name}: getattr = lookup");
        assert_eq!(e1.ttl, Duration::from_secs(1));
    }
    // Mirrored entries: sizes from the source, no write bits.
    let notes = f.lookup(ROOT, OsStr::new("notes.txt")).unwrap().attr;
    assert_eq!((notes.size, notes.perm & 0o222), (6, 0));
    let a = f.lookup(ROOT, OsStr::new("a.nii")).unwrap().attr;
    assert_eq!(a.size, (352 + 7 * VOL) as u64);
    let ad = f.lookup(ROOT, OsStr::new("a.nii.d")).unwrap().attr;
    assert_eq!((ad.kind, ad.perm & 0o222, ad.mtime), (Kind::Dir, 0, a.mtime));

    // No .d for non-images, directories, symlinks leaving SOURCE.
    for name in ["bad.nii.d", "notes.txt.d", "dir.nii.d", "out.nii.d", "sub.d", "missing.nii", "missing.nii.d"] {
        assert_eq!(errno(f.lookup(ROOT, OsStr::new(name))), libc::ENOENT, "{name}");
    }
    for name in [".", "..", "a/b"] {
        assert_eq!(errno(f.lookup(ROOT, OsStr::new(name))), libc::ENOENT, "{name:?}");
    }

    // The real x.nii.d wins over the virtual one.
    let xd = walk(&f, "x.nii.d");
    assert_eq!(names(&list(&f, xd)), [".", "..", "real.txt"]);
    assert_eq!(read_all(&f, walk(&f, "x.nii.d/real.txt")), b"real");
    assert_eq!(errno(f.lookup(xd, OsStr::new("vol_0000.nii"))), libc::ENOENT);

    // The control directory hides a real .nifuse.
    let ctl = walk(&f, ".nifuse");
    let ctl_attr = f.getattr(ctl).unwrap().attr;
    assert_eq!((ctl_attr.kind, ctl_attr.perm, ctl_attr.uid, ctl_attr.gid), (Kind::Dir, 0o755, 1234, 5678));
    assert_eq!(names(&list(&f, ctl)), [".", "..", "drop_caches", "stats"]);
    assert_eq!(errno(f.lookup(ctl, OsStr::new("secret"))), libc::ENOENT);

    // Subdirectories: images get a .d there too.
    let sub = walk(&f, "sub");
    let sub_list = list(&f, sub);
    assert_eq!(names(&sub_list), [".", "..", "c.nii", "c.nii.d"]);
    assert_eq!(sub_list.iter().find(|e| e.name == "..").unwrap().ino, ROOT);
    assert_eq!(sub_list.iter().find(|e| e.name == ".").unwrap().ino, sub);
}

#[test]
fn readdir_offsets_continue_where_they_left_off() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    for dir in [ROOT, walk(&f, "a.nii.d")] {
        let fh = f.opendir(dir).unwrap();
        let full = f.readdir(fh, 0).unwrap();
        assert!(full.len() > 5);
        for off in 0..=full.len() + 2 {
            let part = f.readdir(fh, off as u64).unwrap();
            assert_eq!(part, full[off.min(full.len())..], "offset {off}");
        }
        // As the kernel pages: take 3, continue from the offset of the last one.
        let mut paged = Vec::new();
        let mut off = 0u64;
        loop {
            let chunk: Vec<_> = f.readdir(fh, off).unwrap().into_iter().take(3).collect();
            if chunk.is_empty() {
                break;
            }
            off += chunk.len() as u64;
            paged.extend(chunk);
        }
        assert_eq!(paged, full);
        f.release(fh);
        assert_eq!(errno(f.readdir(fh, 0)), libc::EBADF, "released handle");
    }
    let file = walk(&f, "notes.txt");
    assert_eq!(errno(f.opendir(file)), libc::ENOTDIR);
}

#[test]
fn volume_directories_names_widths_and_sizes() {
    let s = Src::new(|src| {
        standard_source(src);
        let data = bytes(10_001, 9);
        fs::write(src.join("many.nii"), nifti1(&[1, 1, 1, 10_001], 2, 8, 0, &data)).unwrap();
    });
    let f = s.fs(Mode::Fill);
    let ad = walk(&f, "a.nii.d");
    let listing = list(&f, ad);
    let expected: Vec<String> = [".", ".."]
        .iter()
        .map(|s| s.to_string())
        .chain((0..7).map(|k| format!("vol_{k:04}.nii")))
        .collect();
    let in_order: Vec<String> = listing.iter().map(|e| e.name.to_string_lossy().into_owned()).collect();
    assert_eq!(in_order, expected, "volumes listed in order");
    assert_eq!(listing[0].ino, ad);
    assert_eq!(listing[1].ino, ROOT);
    for (k, e) in listing[2..].iter().enumerate() {
        assert_eq!(e.kind, Kind::File);
        let entry = f.lookup(ad, &e.name).unwrap();
        assert_eq!(entry.attr.ino, e.ino, "vol {k}: readdir and lookup agree");
        assert_eq!(entry.attr.size, (352 + VOL) as u64, "vol {k}: size from the header");
        assert_eq!(entry.attr.kind, Kind::File);
        assert_eq!(entry.attr.perm & 0o222, 0);
        assert_eq!(f.lookup(ad, &e.name).unwrap().attr.ino, e.ino, "stable");
    }
    for bad in ["vol_007.nii", "vol_0007.nii", "vol_00001.nii", "vol_0001", "vol_000a.nii", "x"] {
        assert_eq!(errno(f.lookup(ad, OsStr::new(bad))), libc::ENOENT, "{bad}");
    }
    let v0 = walk(&f, "a.nii.d/vol_0000.nii");
    assert_eq!(errno(f.lookup(v0, OsStr::new("x"))), libc::ENOTDIR);
    assert_eq!(errno(f.opendir(v0)), libc::ENOTDIR);
    assert_eq!(errno(f.open(ad, libc::O_RDONLY)), libc::EISDIR);

    // 10,001 volumes: five digits everywhere.
    let md = walk(&f, "many.nii.d");
    let many = list(&f, md);
    assert_eq!(many.len(), 10_003);
    assert_eq!((many[2].name.to_str(), many[10_002].name.to_str()), (Some("vol_00000.nii"), Some("vol_10000.nii")));
    assert!(many[2..].iter().all(|e| e.name.len() == "vol_00000.nii".len()));
    assert_eq!(f.lookup(md, OsStr::new("vol_10000.nii")).unwrap().attr.size, 353);
    assert_eq!(errno(f.lookup(md, OsStr::new("vol_0001.nii"))), libc::ENOENT);
    assert_eq!(errno(f.lookup(md, OsStr::new("vol_10001.nii"))), libc::ENOENT);

    // 5D: dims 4 and 5 flattened.
    assert_eq!(names(&list(&f, walk(&f, "five.nii.d")))[2..], ["vol_0000.nii", "vol_0001.nii", "vol_0002.nii", "vol_0003.nii", "vol_0004.nii", "vol_0005.nii"]);
}

// ---------------------------------------------------------------- reads

fn check_reads(f: &Fs, ino: u64, whole: &[u8], what: &str) {
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
        let got = f.read(fh, off, len).unwrap_or_else(|e| panic!("{what}: read {off}+{len}: {e}"));
        let start = off.min(size) as usize;
        let end = off.saturating_add(u64::from(len)).min(size) as usize;
        assert!(got == whole[start..end], "{what}: read {off}+{len} ({} bytes)", got.len());
    }
    f.release(fh);
    assert_eq!(errno(f.read(fh, 0, 10)), libc::EBADF);
}

#[test]
fn volume_reads_at_every_boundary_plain_gzip_symlink_5d() {
    let (a, _) = image(&[4, 5, 6, 7], 1, 0);
    let (b, _) = image(&[4, 5, 6, 7], 2, 2001);
    let (c, _) = image(&[4, 5, 6, 3], 3, 0);
    let (five, _) = image(&[2, 2, 2, 3, 2], 5, 0);
    for mode in [Mode::Fill, Mode::Unchanged] {
        let s = Src::new(standard_source);
        let f = s.fs(mode);
        for (path, file, vol, k) in [
            ("a.nii", &a, VOL, 3),
            ("a.nii", &a, VOL, 0),
            ("a.nii", &a, VOL, 6),
            ("b.nii.gz", &b, VOL, 3),
            ("b.nii.gz", &b, VOL, 6),
            ("sub/c.nii", &c, VOL, 2),
            ("link.nii", &a, VOL, 5),
            ("five.nii", &five, 16, 4),
        ] {
            let ino = walk(&f, &format!("{path}.d/vol_{k:04}.nii"));
            let whole = expected_volume(file, vol, k);
            check_reads(&f, ino, &whole, &format!("{mode:?} {path} vol {k}"));
            assert_eq!(read_all(&f, ino), whole, "{mode:?} {path} vol {k}: whole file");
        }
        let b3 = read_all(&f, walk(&f, "b.nii.gz.d/vol_0003.nii"));
        assert_eq!(i16::from_le_bytes([b3[68], b3[69]]), 0, "intent 2001 cleared");
        let want = mode == Mode::Fill;
        for img in ["a.nii", "b.nii.gz", "sub/c.nii", "five.nii"] {
            assert_eq!(f.in_memory(Path::new(img)), want, "{mode:?}: {img} in memory");
        }
        // Mirrored files read as they are.
        assert_eq!(read_all(&f, walk(&f, "a.nii")), a);
        assert_eq!(read_all(&f, walk(&f, "notes.txt")), b"hello\n");
    }
}

#[test]
fn truncated_volumes_fail_with_eio_and_present_ones_read() {
    let (img, _) = image(&[4, 5, 6, 7], 8, 0);
    for mode in [Mode::Fill, Mode::Unchanged] {
        let s = Src::new(|src| {
            fs::write(src.join("t.nii"), &img[..352 + 4 * VOL + VOL / 2]).unwrap();
            fs::write(src.join("tz.nii.gz"), gzip(&img[..352 + 4 * VOL + VOL / 2])).unwrap();
        });
        let f = s.fs(mode);
        for name in ["t.nii", "tz.nii.gz"] {
            for k in 0..4 {
                let ino = walk(&f, &format!("{name}.d/vol_{k:04}.nii"));
                assert_eq!(read_all(&f, ino), expected_volume(&img, VOL, k), "{mode:?} {name} vol {k}");
            }
            for k in 4..7 {
                let ino = walk(&f, &format!("{name}.d/vol_{k:04}.nii"));
                let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
                assert_eq!(f.read(fh, 0, 352).unwrap(), expected_volume(&img, VOL, 0)[..352], "header still reads");
                assert_eq!(errno(f.read(fh, 0, 4096)), libc::EIO, "{mode:?} {name} vol {k}");
                f.release(fh);
            }
            assert!(!f.in_memory(Path::new(name)));
        }
    }
}

// ---------------------------------------------------------------- read-only

#[test]
fn writes_are_refused_with_erofs() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let vol = walk(&f, "a.nii.d/vol_0000.nii");
    let notes = walk(&f, "notes.txt");
    let stats = walk(&f, ".nifuse/stats");
    let dc = walk(&f, ".nifuse/drop_caches");
    for (ino, what) in [(vol, "volume"), (notes, "mirrored file"), (stats, "stats")] {
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC, libc::O_WRONLY | libc::O_APPEND] {
            assert_eq!(errno(f.open(ino, flags)), libc::EROFS, "{what} flags {flags:#o}");
        }
        assert_eq!(errno(f.setattr(ino, Some(0))), libc::EROFS, "{what}: truncate");
        assert_eq!(errno(f.setattr(ino, None)), libc::EROFS, "{what}: chmod/utimes");
        let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
        assert_eq!(errno(f.write(fh, b"x")), libc::EROFS, "{what}: write");
        f.release(fh);
    }
    for ino in [ROOT, walk(&f, "a.nii.d"), walk(&f, "a.nii"), walk(&f, "sub")] {
        assert_eq!(errno(f.setattr(ino, None)), libc::EROFS, "setattr of inode {ino}");
    }
    // drop_caches: opened for writing with truncation, as `echo 1 >` does.
    let fh = f.open(dc, libc::O_WRONLY | libc::O_TRUNC | libc::O_CREAT).unwrap().fh;
    assert_eq!(f.setattr(dc, Some(0)).unwrap().attr.ino, dc);
    assert_eq!(errno(f.setattr(dc, Some(5))), libc::EROFS);
    assert_eq!(f.write(fh, b"1\n").unwrap(), 2);
    f.release(fh);
    assert_eq!(fs::read(s.dir().join("notes.txt")).unwrap(), b"hello\n");
    assert_eq!(fs::read(s.dir().join("a.nii")).unwrap(), image(&[4, 5, 6, 7], 1, 0).0);
}

// ---------------------------------------------------------------- xattrs

#[test]
fn xattr_protocol_and_values() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let a = walk(&f, "a.nii");
    let ad = walk(&f, "a.nii.d");
    let b = walk(&f, "b.nii.gz");
    for ino in [a, ad] {
        assert_eq!(f.getxattr(ino, OsStr::new("user.cache_mode"), 0).unwrap(), XattrValue::Size(4));
        assert_eq!(
            f.getxattr(ino, OsStr::new("user.cache_mode"), 4).unwrap(),
            XattrValue::Data(b"fill".to_vec())
        );
        assert_eq!(errno(f.getxattr(ino, OsStr::new("user.cache_mode"), 3)), libc::ERANGE);
        assert_eq!(xattr(&f, ino, "user.in_memory"), "0");
        assert_eq!(xattr(&f, ino, "user.nifti.shape"), "4,5,6,7");
        assert_eq!(xattr(&f, ino, "user.nifti.dtype"), "int16");
        assert_eq!(xattr(&f, ino, "user.nifti.volumes"), "7");
        assert_eq!(f.getxattr(ino, OsStr::new("user.nifti.shape"), 0).unwrap(), XattrValue::Size(7));
        assert_eq!(f.getxattr(ino, OsStr::new("user.uncache"), 0).unwrap(), XattrValue::Size(0));
        for missing in ["user.nope", "security.selinux", "system.posix_acl_access", "trusted.x", ""] {
            assert_eq!(errno(f.getxattr(ino, OsStr::new(missing), 0)), libc::ENODATA, "{missing:?}");
            assert_eq!(errno(f.getxattr(ino, OsStr::new(missing), 100)), libc::ENODATA, "{missing:?}");
        }
        // listxattr: every name, NUL-terminated.
        let mut want = Vec::new();
        for n in NAMES {
            want.extend_from_slice(n.as_bytes());
            want.push(0);
        }
        assert_eq!(f.listxattr(ino, 0).unwrap(), XattrValue::Size(want.len() as u32));
        assert_eq!(f.listxattr(ino, want.len() as u32).unwrap(), XattrValue::Data(want.clone()));
        assert_eq!(f.listxattr(ino, 4096).unwrap(), XattrValue::Data(want.clone()));
        assert_eq!(errno(f.listxattr(ino, want.len() as u32 - 1)), libc::ERANGE);
        let listed: Vec<&[u8]> = want.split(|&c| c == 0).filter(|n| !n.is_empty()).collect();
        for n in [
            "user.cache_mode",
            "user.in_memory",
            "user.uncache",
            "user.nifti.shape",
            "user.nifti.dtype",
            "user.nifti.volumes",
        ] {
            assert!(listed.contains(&n.as_bytes()), "{n} listed");
        }
    }
    // Non-image entries: no attributes at all, ENODATA (never ENOSYS).
    let others = [
        walk(&f, "notes.txt"),
        walk(&f, "a.nii.d/vol_0000.nii"),
        ROOT,
        walk(&f, "sub"),
        walk(&f, "bad.nii"),
        walk(&f, "x.nii.d"),
        walk(&f, ".nifuse"),
        walk(&f, ".nifuse/stats"),
    ];
    for ino in others {
        assert_eq!(f.listxattr(ino, 0).unwrap(), XattrValue::Size(0), "inode {ino}");
        assert_eq!(f.listxattr(ino, 100).unwrap(), XattrValue::Data(Vec::new()), "inode {ino}");
        for n in NAMES {
            assert_eq!(errno(f.getxattr(ino, OsStr::new(n), 0)), libc::ENODATA, "inode {ino} {n}");
        }
        let e = errno(f.setxattr(ino, OsStr::new("user.cache_mode"), b"fill"));
        assert_ne!(e, libc::ENOSYS);
        assert_ne!(e, 0);
    }
    assert_eq!(errno(f.getxattr(999_999, OsStr::new("user.cache_mode"), 0)), libc::ENOENT);

    // cache_mode: set on NAME.d, seen on NAME; invalid values refused and ignored.
    f.setxattr(ad, OsStr::new("user.cache_mode"), b"unchanged").unwrap();
    assert_eq!(xattr(&f, a, "user.cache_mode"), "unchanged");
    assert_eq!(xattr(&f, b, "user.cache_mode"), "fill", "other images keep the default");
    for bad in [&b"bogus"[..], b"", b"FILL", b"fill unchanged", b" fill"] {
        assert_eq!(errno(f.setxattr(a, OsStr::new("user.cache_mode"), bad)), libc::EINVAL, "{bad:?}");
    }
    assert_eq!(xattr(&f, ad, "user.cache_mode"), "unchanged");
    // Read-only attributes cannot be set; none is ENOSYS.
    for ro in ["user.in_memory", "user.nifti.shape", "user.nifti.dtype", "user.nifti.volumes"] {
        let e = errno(f.setxattr(a, OsStr::new(ro), b"1"));
        assert!(e == libc::EACCES || e == libc::EPERM || e == libc::EROFS, "{ro}: errno {e}");
    }

    // unchanged: reads do not fill.
    let v = walk(&f, "a.nii.d/vol_0002.nii");
    let (afile, _) = image(&[4, 5, 6, 7], 1, 0);
    assert_eq!(read_all(&f, v), expected_volume(&afile, VOL, 2));
    assert_eq!(xattr(&f, a, "user.in_memory"), "0");
    // fill (a trailing newline, as `setfattr -v` may send, is accepted).
    f.setxattr(a, OsStr::new("user.cache_mode"), b"fill\n").unwrap();
    assert_eq!(xattr(&f, ad, "user.cache_mode"), "fill");
    assert_eq!(read_all(&f, v), expected_volume(&afile, VOL, 2));
    assert_eq!(xattr(&f, a, "user.in_memory"), "1");
    assert_eq!(xattr(&f, ad, "user.in_memory"), "1");
    assert_eq!(xattr(&f, b, "user.in_memory"), "0");
    // uncache, any value, on either entry.
    f.setxattr(ad, OsStr::new("user.uncache"), b"").unwrap();
    assert_eq!(xattr(&f, a, "user.in_memory"), "0");
    assert_eq!(read_all(&f, v), expected_volume(&afile, VOL, 2));
    assert_eq!(xattr(&f, a, "user.in_memory"), "1");
    f.setxattr(a, OsStr::new("user.uncache"), b"1").unwrap();
    assert_eq!(xattr(&f, ad, "user.in_memory"), "0");
    f.setxattr(a, OsStr::new("user.uncache"), b"1").unwrap();
    // Removing is never possible, and never ENOSYS.
    assert_eq!(errno(f.removexattr(a, OsStr::new("user.cache_mode"))), libc::EACCES);
    assert_eq!(errno(f.removexattr(a, OsStr::new("user.nope"))), libc::ENODATA);
}

// ---------------------------------------------------------------- .nifuse

/// A minimal JSON value and parser, enough to check `.nifuse/stats`.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn get(&self, key: &str) -> &J {
        match self {
            J::Obj(kv) => &kv.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no key {key} in {self:?}")).1,
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            J::Num(n) => *n,
            _ => panic!("not a number: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            J::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn arr(&self) -> &[J] {
        match self {
            J::Arr(v) => v,
            _ => panic!("not an array: {self:?}"),
        }
    }
}

fn parse_json(text: &str) -> J {
    fn ws(s: &[u8], i: &mut usize) {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn string(s: &[u8], i: &mut usize) -> String {
        assert_eq!(s[*i], b'"');
        *i += 1;
        let mut out = Vec::new();
        loop {
            let c = s[*i];
            *i += 1;
            match c {
                b'"' => return String::from_utf8(out).expect("utf-8 string"),
                b'\\' => {
                    let e = s[*i];
                    *i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&s[*i..*i + 4]).unwrap();
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap();
                            *i += 4;
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        _ => panic!("bad escape \\{}", e as char),
                    }
                }
                c if c < 0x20 => panic!("raw control character in a JSON string"),
                c => out.push(c),
            }
        }
    }
    fn value(s: &[u8], i: &mut usize) -> J {
        ws(s, i);
        let v = match s[*i] {
            b'{' => {
                *i += 1;
                let mut kv = Vec::new();
                ws(s, i);
                if s[*i] == b'}' {
                    *i += 1;
                    return J::Obj(kv);
                }
                loop {
                    ws(s, i);
                    let k = string(s, i);
                    ws(s, i);
                    assert_eq!(s[*i], b':', "':' expected at {}", *i);
                    *i += 1;
                    kv.push((k, value(s, i)));
                    ws(s, i);
                    *i += 1;
                    match s[*i - 1] {
                        b',' => continue,
                        b'}' => break,
                        c => panic!("',' or '}}' expected at {}, got {:?}", *i - 1, c as char),
                    }
                }
                J::Obj(kv)
            }
            b'[' => {
                *i += 1;
                let mut v = Vec::new();
                ws(s, i);
                if s[*i] == b']' {
                    *i += 1;
                    return J::Arr(v);
                }
                loop {
                    v.push(value(s, i));
                    ws(s, i);
                    *i += 1;
                    match s[*i - 1] {
                        b',' => continue,
                        b']' => break,
                        c => panic!("',' or ']' expected at {}, got {:?}", *i - 1, c as char),
                    }
                }
                J::Arr(v)
            }
            b'"' => J::Str(string(s, i)),
            b't' if s[*i..].starts_with(b"true") => {
                *i += 4;
                J::Bool(true)
            }
            b'f' if s[*i..].starts_with(b"false") => {
                *i += 5;
                J::Bool(false)
            }
            b'n' if s[*i..].starts_with(b"null") => {
                *i += 4;
                J::Null
            }
            _ => {
                let start = *i;
                while *i < s.len() && (s[*i].is_ascii_digit() || b"+-.eE".contains(&s[*i])) {
                    *i += 1;
                }
                J::Num(std::str::from_utf8(&s[start..*i]).unwrap().parse().expect("JSON number"))
            }
        };
        v
    }
    let s = text.as_bytes();
    let mut i = 0;
    let v = value(s, &mut i);
    ws(s, &mut i);
    assert_eq!(i, s.len(), "trailing characters after the JSON value");
    v
}

fn stats(f: &Fs) -> (String, J) {
    let ino = walk(f, ".nifuse/stats");
    let opened = f.open(ino, libc::O_RDONLY).unwrap();
    assert!(opened.direct_io, "stats has no size known in advance: direct_io");
    let text = String::from_utf8(f.read(opened.fh, 0, 1 << 20).unwrap()).unwrap();
    // Reads at an offset see the same snapshot.
    assert_eq!(f.read(opened.fh, 5, 10).unwrap(), text.as_bytes()[5..15]);
    f.release(opened.fh);
    let json = parse_json(&text);
    (text, json)
}

fn image_row<'a>(j: &'a J, path: &str) -> &'a J {
    j.get("images")
        .arr()
        .iter()
        .find(|r| r.get("path").str() == path)
        .unwrap_or_else(|| panic!("no stats row for {path}: {j:?}"))
}

#[test]
fn stats_json_and_drop_caches() {
    let weird = "we\"ird\\name.nii";
    let s = Src::new(|src| {
        fs::write(src.join("a.nii"), image(&[4, 5, 6, 7], 1, 0).0).unwrap();
        fs::write(src.join("b.nii.gz"), gzip(&image(&[4, 5, 6, 7], 2, 0).0)).unwrap();
        fs::write(src.join(weird), image(&[4, 5, 6, 2], 3, 0).0).unwrap();
        fs::write(src.join("notes.txt"), b"hi").unwrap();
    });
    let f = s.fs(Mode::Fill);
    let (_, j) = stats(&f);
    assert_eq!(j.get("images").arr().len(), 0, "nothing probed yet");

    // a.nii: one header-only read (no cache access), two data reads (hits).
    let va = walk(&f, "a.nii.d/vol_0001.nii");
    let fh = f.open(va, libc::O_RDONLY).unwrap().fh;
    f.read(fh, 0, 100).unwrap();
    f.read(fh, 0, 4096).unwrap();
    f.read(fh, 400, 10).unwrap();
    f.release(fh);
    // b.nii.gz: unchanged, one data read (a miss).
    f.setxattr(walk(&f, "b.nii.gz"), OsStr::new("user.cache_mode"), b"unchanged").unwrap();
    let vb = walk(&f, "b.nii.gz.d/vol_0000.nii");
    read_all(&f, vb);
    walk(&f, &format!("{weird}.d"));

    let (text, j) = stats(&f);
    let rows = j.get("images").arr();
    assert_eq!(rows.len(), 3, "{text}");
    let ra = image_row(&j, "a.nii");
    assert_eq!(ra.get("volumes").num(), 7.0);
    assert_eq!(ra.get("compressed"), &J::Bool(false));
    assert_eq!(ra.get("cache_mode").str(), "fill");
    assert_eq!(ra.get("cache_state").str(), "full");
    assert_eq!(ra.get("cache_bytes").num(), (7 * VOL) as f64);
    assert_eq!((ra.get("hits").num(), ra.get("misses").num()), (2.0, 0.0), "{text}");
    let rb = image_row(&j, "b.nii.gz");
    assert_eq!(rb.get("compressed"), &J::Bool(true));
    assert_eq!(rb.get("cache_mode").str(), "unchanged");
    assert_eq!(rb.get("cache_state").str(), "empty");
    assert_eq!(rb.get("cache_bytes").num(), 0.0);
    assert_eq!((rb.get("hits").num(), rb.get("misses").num()), (0.0, 1.0), "{text}");
    assert!(!rb.get("index").str().is_empty());
    let rw = image_row(&j, weird);
    assert_eq!(rw.get("volumes").num(), 2.0);
    assert_eq!(rw.get("cache_state").str(), "empty");
    let t = j.get("totals");
    assert_eq!(t.get("images").num(), 3.0);
    assert_eq!(t.get("cached_images").num(), 1.0);
    assert_eq!(t.get("cache_bytes").num(), (7 * VOL) as f64);
    assert_eq!(t.get("cache_budget").num(), BUDGET as f64);
    assert_eq!((t.get("hits").num(), t.get("misses").num()), (2.0, 1.0));

    // drop_caches: "1" empties every cache; other values are EINVAL.
    f.setxattr(walk(&f, "b.nii.gz"), OsStr::new("user.cache_mode"), b"fill").unwrap();
    read_all(&f, vb);
    assert!(f.in_memory(Path::new("a.nii")) && filled(&f, "b.nii.gz"));
    let dc = walk(&f, ".nifuse/drop_caches");
    let dca = f.getattr(dc).unwrap().attr;
    assert_eq!((dca.kind, dca.perm, dca.uid), (Kind::File, 0o644, 1234));
    let fh = f.open(dc, libc::O_WRONLY | libc::O_TRUNC).unwrap().fh;
    for bad in [&b"0"[..], b"2", b"", b"\n", b"abc", b"11", b"1 2"] {
        assert_eq!(errno(f.write(fh, bad)), libc::EINVAL, "{bad:?}");
    }
    assert!(f.in_memory(Path::new("a.nii")), "invalid writes drop nothing");
    assert_eq!(f.write(fh, b"1\n").unwrap(), 2);
    f.release(fh);
    assert!(!f.in_memory(Path::new("a.nii")));
    assert!(!f.in_memory(Path::new("b.nii.gz")));
    let (text, j) = stats(&f);
    assert_eq!(j.get("totals").get("cached_images").num(), 0.0, "{text}");
    assert_eq!(j.get("totals").get("cache_bytes").num(), 0.0);
    assert!(j.get("images").arr().iter().all(|r| r.get("cache_state").str() == "empty"), "{text}");
    // Reading drop_caches gives nothing; writing "1" with a plain open works too.
    let fh = f.open(dc, libc::O_WRONLY).unwrap().fh;
    assert_eq!(f.write(fh, b"1").unwrap(), 1);
    f.release(fh);
    let fh = f.open(dc, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(fh, 0, 100).unwrap(), b"");
    f.release(fh);
}

// ---------------------------------------------------------------- forget

#[test]
fn forgetting_every_inode_of_an_image_drops_its_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let a = Path::new("a.nii");
    let ai = walk(&f, "a.nii");
    let ad = walk(&f, "a.nii.d");
    let v0 = walk(&f, "a.nii.d/vol_0000.nii"); // second lookup of a.nii.d
    let v3 = f.lookup(ad, OsStr::new("vol_0003.nii")).unwrap().attr.ino;
    f.lookup(ad, OsStr::new("vol_0003.nii")).unwrap();
    read_all(&f, v3);
    assert!(f.in_memory(a));
    // Another image's cache is not affected.
    read_all(&f, walk(&f, "sub/c.nii.d/vol_0000.nii"));
    assert!(f.in_memory(Path::new("sub/c.nii")));

    // Lookups held: a.nii 1, a.nii.d 2, vol_0000 1, vol_0003 2.
    assert_eq!(f.forget(v3, 2), None);
    assert_eq!(f.forget(ad, 2), None);
    assert_eq!(f.forget(v0, 1), None);
    assert!(f.in_memory(a), "a.nii itself is still looked up");
    assert_eq!(f.forget(ai, 1), Some(a.to_path_buf()));
    assert!(!f.in_memory(a), "no inode of a.nii held and nothing open: cache dropped");
    assert!(f.in_memory(Path::new("sub/c.nii")), "other images keep their caches");
    // Forgetting again does nothing.
    assert_eq!(f.forget(ai, 1), None);

    // Only NAME.d and a volume looked up: forgetting them is enough.
    let bd = walk(&f, "b.nii.gz.d");
    let b1 = f.lookup(bd, OsStr::new("vol_0001.nii")).unwrap().attr.ino;
    read_all(&f, b1);
    assert!(filled(&f, "b.nii.gz"));
    assert_eq!(f.forget(bd, 1), None);
    assert_eq!(f.forget(b1, 5), Some(Path::new("b.nii.gz").to_path_buf()));
    assert!(!f.in_memory(Path::new("b.nii.gz")));
}

#[test]
fn forgetting_an_image_with_an_open_volume_keeps_its_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let a = Path::new("a.nii");
    let ad = walk(&f, "a.nii.d");
    let v = f.lookup(ad, OsStr::new("vol_0005.nii")).unwrap().attr.ino;
    let fh = f.open(v, libc::O_RDONLY).unwrap().fh;
    let (afile, _) = image(&[4, 5, 6, 7], 1, 0);
    assert_eq!(f.read(fh, 0, 1 << 20).unwrap(), expected_volume(&afile, VOL, 5));
    assert!(f.in_memory(a));
    f.forget(v, 1);
    f.forget(ad, 1);
    assert!(f.in_memory(a), "a volume of a.nii is open: cache kept");
    assert_eq!(f.read(fh, 0, 1 << 20).unwrap(), expected_volume(&afile, VOL, 5));
    f.release(fh);
}

// ---------------------------------------------------------------- changes

#[test]
fn a_rewritten_source_is_seen_by_getattr_lookup_and_open() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let ad = walk(&f, "a.nii.d");
    let ai = walk(&f, "a.nii");
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let v5 = walk(&f, "a.nii.d/vol_0005.nii");
    assert_eq!(read_all(&f, v2), expected_volume(&old, VOL, 2));
    assert!(f.in_memory(Path::new("a.nii")));

    // Rewritten in place: 8x8x8x3, a different volume size and count.
    let (new, _) = image(&[8, 8, 8, 3], 77, 0);
    let new_vol = 8 * 8 * 8 * 2;
    fs::write(s.dir().join("a.nii"), &new).unwrap();
    assert_eq!(f.getattr(ai).unwrap().attr.size, new.len() as u64);
    assert_eq!(f.getattr(v2).unwrap().attr.size, (352 + new_vol) as u64, "new volume size");
    assert_eq!(errno(f.getattr(v5)), libc::ENOENT, "volume 5 is gone");
    assert_eq!(errno(f.lookup(ad, OsStr::new("vol_0005.nii"))), libc::ENOENT);
    assert_eq!(errno(f.open(v5, libc::O_RDONLY)), libc::ENOENT);
    assert!(!f.in_memory(Path::new("a.nii")), "the old version's cache is not the new one's");
    assert_eq!(
        names(&list(&f, ad)),
        [".", "..", "vol_0000.nii", "vol_0001.nii", "vol_0002.nii"]
    );
    assert_eq!(xattr(&f, ai, "user.nifti.shape"), "8,8,8,3");
    assert_eq!(f.lookup(ad, OsStr::new("vol_0002.nii")).unwrap().attr.ino, v2, "same name, same inode");
    let whole = expected_volume(&new, new_vol, 2);
    check_reads(&f, v2, &whole, "rewritten a.nii vol 2");
    assert_eq!(read_all(&f, v2), whole);
    assert!(f.in_memory(Path::new("a.nii")));
    assert_eq!(read_all(&f, ai), new, "the mirrored file too");

    // Replaced by rename, gzip this time.
    let (newer, _) = image(&[4, 5, 6, 4], 78, 0);
    let tmp = s.tmp.path().join("staging.nii.gz");
    fs::write(&tmp, gzip(&newer)).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    assert_eq!(f.getattr(v2).unwrap().attr.size, (352 + VOL) as u64);
    assert_eq!(read_all(&f, v2), expected_volume(&newer, VOL, 2));
    assert_eq!(read_all(&f, walk(&f, "a.nii.d/vol_0003.nii")), expected_volume(&newer, VOL, 3));
}

#[test]
fn an_open_volume_keeps_reading_its_version_after_a_replace() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Unchanged);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let old_fh = f.open(v2, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(old_fh, 0, 100).unwrap(), expected_volume(&old, VOL, 2)[..100]);

    let (new, _) = image(&[4, 5, 6, 7], 99, 0);
    let tmp = s.tmp.path().join("staging.nii");
    fs::write(&tmp, &new).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    let new_fh = f.open(v2, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(new_fh, 0, 1 << 20).unwrap(), expected_volume(&new, VOL, 2));
    assert_eq!(f.read(old_fh, 0, 1 << 20).unwrap(), expected_volume(&old, VOL, 2), "no mix of versions");
    f.release(old_fh);
    f.release(new_fh);
}

#[test]
fn a_stale_handle_does_not_replace_the_current_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let old_fh = f.open(v2, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(old_fh, 0, 1 << 20).unwrap(), expected_volume(&old, VOL, 2));

    // Replaced by rename: the new version is read and cached.
    let (new, _) = image(&[4, 5, 6, 7], 99, 0);
    let tmp = s.tmp.path().join("staging.nii");
    fs::write(&tmp, &new).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    assert_eq!(read_all(&f, v2), expected_volume(&new, VOL, 2));
    assert!(f.in_memory(Path::new("a.nii")), "new version cached");

    // A reader still holding the old version gets the old bytes...
    assert_eq!(f.read(old_fh, 0, 1 << 20).unwrap(), expected_volume(&old, VOL, 2));
    // ...but must not throw away the current version's cache to refill it from the old file.
    assert!(
        f.in_memory(Path::new("a.nii")),
        "a read through a handle on the replaced file dropped the cache of the current file"
    );
    f.release(old_fh);
}
