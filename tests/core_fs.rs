//! Core tests of the filesystem operations (no FUSE mount): `nifuse::fs::Fs`
//! on a temporary SOURCE, called as the FUSE adapter would call it.
//! Tree, listings, reads and xattrs here; caches, stats, forget and source
//! changes in core_fs_state.rs.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::corefs::*;
use common::{bytes, gzip, nifti1};
use nifuse::cache::Mode;
use nifuse::fs::attr::Kind;
use nifuse::fs::xattr::{NAMES, XattrValue};

#[test]
fn root_listing_lookup_and_inodes() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let root = list(&f, ROOT);
    assert_eq!(
        names(&root),
        [
            ".",
            "..",
            ".nifuse",
            "a.nii",
            "a.nii.d",
            "b.nii.gz",
            "b.nii.gz.d",
            "bad.nii",
            "dir.nii",
            "five.nii",
            "five.nii.d",
            "link.nii",
            "link.nii.d",
            "notes.txt",
            "out.nii",
            "sub",
            "x.nii",
            "x.nii.d"
        ]
    );
    let by_name = |n: &str| root.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(by_name(".").ino, ROOT);
    assert_eq!(by_name("a.nii.d").kind, Kind::Dir);
    assert_eq!(by_name("a.nii").kind, Kind::File);
    assert_eq!(by_name("link.nii").kind, Kind::Symlink);
    assert_eq!(by_name(".nifuse").kind, Kind::Dir);
    let inos: HashSet<u64> = root
        .iter()
        .filter(|e| e.name != "..")
        .map(|e| e.ino)
        .collect();
    assert_eq!(
        inos.len(),
        root.len() - 1,
        "distinct inode numbers: {root:?}"
    );

    // Lookups agree with the listing and are stable.
    for name in [
        "a.nii",
        "a.nii.d",
        "b.nii.gz.d",
        "notes.txt",
        "sub",
        "x.nii.d",
        ".nifuse",
        "link.nii.d",
    ] {
        let e1 = f
            .lookup(ROOT, OsStr::new(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let e2 = f.lookup(ROOT, OsStr::new(name)).unwrap();
        assert_eq!(e1.attr.ino, e2.attr.ino, "{name}: stable inode");
        assert_eq!(
            e1.attr.ino,
            by_name(name).ino,
            "{name}: lookup and readdir agree"
        );
        assert_eq!(e1.attr.kind, by_name(name).kind, "{name}");
        assert_eq!(
            f.getattr(e1.attr.ino).unwrap().attr,
            e1.attr,
            "{name}: getattr = lookup"
        );
        assert_eq!(e1.ttl, Duration::from_secs(1));
    }
    // Mirrored entries: sizes from the source, no write bits.
    let notes = f.lookup(ROOT, OsStr::new("notes.txt")).unwrap().attr;
    assert_eq!((notes.size, notes.perm & 0o222), (6, 0));
    let a = f.lookup(ROOT, OsStr::new("a.nii")).unwrap().attr;
    assert_eq!(a.size, (352 + 7 * VOL) as u64);
    let ad = f.lookup(ROOT, OsStr::new("a.nii.d")).unwrap().attr;
    assert_eq!(
        (ad.kind, ad.perm & 0o222, ad.mtime),
        (Kind::Dir, 0, a.mtime)
    );

    // No .d for non-images, directories, symlinks leaving SOURCE.
    for name in [
        "bad.nii.d",
        "notes.txt.d",
        "dir.nii.d",
        "out.nii.d",
        "sub.d",
        "missing.nii",
        "missing.nii.d",
    ] {
        assert_eq!(
            errno(f.lookup(ROOT, OsStr::new(name))),
            libc::ENOENT,
            "{name}"
        );
    }
    for name in [".", "..", "a/b"] {
        assert_eq!(
            errno(f.lookup(ROOT, OsStr::new(name))),
            libc::ENOENT,
            "{name:?}"
        );
    }

    // The real x.nii.d wins over the virtual one.
    let xd = walk(&f, "x.nii.d");
    assert_eq!(names(&list(&f, xd)), [".", "..", "real.txt"]);
    assert_eq!(read_all(&f, walk(&f, "x.nii.d/real.txt")), b"real");
    assert_eq!(
        errno(f.lookup(xd, OsStr::new("vol_0000.nii"))),
        libc::ENOENT
    );

    // The control directory hides a real .nifuse.
    let ctl = walk(&f, ".nifuse");
    let ctl_attr = f.getattr(ctl).unwrap().attr;
    assert_eq!(
        (ctl_attr.kind, ctl_attr.perm, ctl_attr.uid, ctl_attr.gid),
        (Kind::Dir, 0o755, 1234, 5678)
    );
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
        fs::write(
            src.join("many.nii"),
            nifti1(&[1, 1, 1, 10_001], 2, 8, 0, &data),
        )
        .unwrap();
    });
    let f = s.fs(Mode::Fill);
    let ad = walk(&f, "a.nii.d");
    let listing = list(&f, ad);
    let expected: Vec<String> = [".", "..", "float32", "float64", "x", "y", "z", "a.nii"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..7).map(|k| format!("vol_{k:04}.nii")))
        .collect();
    let in_order: Vec<String> = listing
        .iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        in_order, expected,
        "slice dirs, the whole image, then volumes in order"
    );
    assert_eq!(listing[0].ino, ad);
    assert_eq!(listing[1].ino, ROOT);
    for e in &listing[2..7] {
        assert_eq!(e.kind, Kind::Dir, "{:?}", e.name);
        assert_eq!(f.lookup(ad, &e.name).unwrap().attr.ino, e.ino);
    }
    let whole = f.lookup(ad, OsStr::new("a.nii")).unwrap();
    assert_eq!(whole.attr.size, (352 + 7 * VOL) as u64, "the whole image");
    for (k, e) in listing[8..].iter().enumerate() {
        assert_eq!(e.kind, Kind::File);
        let entry = f.lookup(ad, &e.name).unwrap();
        assert_eq!(entry.attr.ino, e.ino, "vol {k}: readdir and lookup agree");
        assert_eq!(
            entry.attr.size,
            (352 + VOL) as u64,
            "vol {k}: size from the header"
        );
        assert_eq!(entry.attr.kind, Kind::File);
        assert_eq!(entry.attr.perm & 0o222, 0);
        assert_eq!(f.lookup(ad, &e.name).unwrap().attr.ino, e.ino, "stable");
    }
    for bad in [
        "vol_007.nii",
        "vol_0007.nii",
        "vol_00001.nii",
        "vol_0001",
        "vol_000a.nii",
        "x.nii",
        "float16",
        "vols_0003-0002.nii",
        "vols_0000-0007.nii",
        "vols_000-006.nii",
        "vols_0000-0006_step0.nii",
        "vols_0000-0006_step01.nii",
        "vols_0000-0006.nii.gz",
        "a.nii.gz",
    ] {
        assert_eq!(errno(f.lookup(ad, OsStr::new(bad))), libc::ENOENT, "{bad}");
    }
    let v0 = walk(&f, "a.nii.d/vol_0000.nii");
    assert_eq!(errno(f.lookup(v0, OsStr::new("x"))), libc::ENOTDIR);
    assert_eq!(errno(f.opendir(v0)), libc::ENOTDIR);
    assert_eq!(errno(f.open(ad, libc::O_RDONLY)), libc::EISDIR);

    // 10,001 volumes: five digits everywhere.
    let md = walk(&f, "many.nii.d");
    let many = list(&f, md);
    assert_eq!(many.len(), 2 + 2 + 3 + 1 + 10_001);
    assert_eq!(
        (many[8].name.to_str(), many[10_008].name.to_str()),
        (Some("vol_00000.nii"), Some("vol_10000.nii"))
    );
    assert!(
        many[8..]
            .iter()
            .all(|e| e.name.len() == "vol_00000.nii".len())
    );
    assert_eq!(
        f.lookup(md, OsStr::new("vols_00002-10000_step4999.nii"))
            .unwrap()
            .attr
            .size,
        352 + 3,
        "a range with five-digit bounds: volumes 2, 5001, 10000"
    );
    assert_eq!(
        errno(f.lookup(md, OsStr::new("vols_0002-0003.nii"))),
        libc::ENOENT
    );
    assert_eq!(
        f.lookup(md, OsStr::new("vol_10000.nii")).unwrap().attr.size,
        353
    );
    assert_eq!(
        errno(f.lookup(md, OsStr::new("vol_0001.nii"))),
        libc::ENOENT
    );
    assert_eq!(
        errno(f.lookup(md, OsStr::new("vol_10001.nii"))),
        libc::ENOENT
    );

    // 5D: dims 4 and 5 flattened.
    assert_eq!(
        names(&list(&f, walk(&f, "five.nii.d")))[5..11],
        [
            "vol_0000.nii",
            "vol_0001.nii",
            "vol_0002.nii",
            "vol_0003.nii",
            "vol_0004.nii",
            "vol_0005.nii"
        ]
    );
}

// ---------------------------------------------------------------- reads

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
            assert_eq!(
                read_all(&f, ino),
                whole,
                "{mode:?} {path} vol {k}: whole file"
            );
        }
        let b3 = read_all(&f, walk(&f, "b.nii.gz.d/vol_0003.nii"));
        assert_eq!(
            i16::from_le_bytes([b3[68], b3[69]]),
            0,
            "intent 2001 cleared"
        );
        let want = mode == Mode::Fill;
        for img in ["a.nii", "b.nii.gz", "sub/c.nii", "five.nii"] {
            // Fills run in the background (compressed ones never block readers).
            let in_memory = if want {
                filled(&f, img)
            } else {
                f.in_memory(Path::new(img))
            };
            assert_eq!(in_memory, want, "{mode:?}: {img} in memory");
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
                assert_eq!(
                    read_all(&f, ino),
                    expected_volume(&img, VOL, k),
                    "{mode:?} {name} vol {k}"
                );
            }
            for k in 4..7 {
                let ino = walk(&f, &format!("{name}.d/vol_{k:04}.nii"));
                let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
                assert_eq!(
                    f.read(fh, 0, 352).unwrap(),
                    expected_volume(&img, VOL, 0)[..352],
                    "header still reads"
                );
                assert_eq!(
                    errno(f.read(fh, 0, 4096)),
                    libc::EIO,
                    "{mode:?} {name} vol {k}"
                );
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
        for flags in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_RDONLY | libc::O_TRUNC,
            libc::O_WRONLY | libc::O_APPEND,
        ] {
            assert_eq!(
                errno(f.open(ino, flags)),
                libc::EROFS,
                "{what} flags {flags:#o}"
            );
        }
        assert_eq!(
            errno(f.setattr(ino, Some(0))),
            libc::EROFS,
            "{what}: truncate"
        );
        assert_eq!(
            errno(f.setattr(ino, None)),
            libc::EROFS,
            "{what}: chmod/utimes"
        );
        let fh = f.open(ino, libc::O_RDONLY).unwrap().fh;
        assert_eq!(errno(f.write(fh, b"x")), libc::EROFS, "{what}: write");
        f.release(fh);
    }
    for ino in [
        ROOT,
        walk(&f, "a.nii.d"),
        walk(&f, "a.nii"),
        walk(&f, "sub"),
    ] {
        assert_eq!(
            errno(f.setattr(ino, None)),
            libc::EROFS,
            "setattr of inode {ino}"
        );
    }
    // drop_caches: opened for writing with truncation, as `echo 1 >` does.
    let fh = f
        .open(dc, libc::O_WRONLY | libc::O_TRUNC | libc::O_CREAT)
        .unwrap()
        .fh;
    assert_eq!(f.setattr(dc, Some(0)).unwrap().attr.ino, dc);
    assert_eq!(errno(f.setattr(dc, Some(5))), libc::EROFS);
    assert_eq!(f.write(fh, b"1\n").unwrap(), 2);
    f.release(fh);
    assert_eq!(fs::read(s.dir().join("notes.txt")).unwrap(), b"hello\n");
    assert_eq!(
        fs::read(s.dir().join("a.nii")).unwrap(),
        image(&[4, 5, 6, 7], 1, 0).0
    );
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
        assert_eq!(
            f.getxattr(ino, OsStr::new("user.cache_mode"), 0).unwrap(),
            XattrValue::Size(4)
        );
        assert_eq!(
            f.getxattr(ino, OsStr::new("user.cache_mode"), 4).unwrap(),
            XattrValue::Data(b"fill".to_vec())
        );
        assert_eq!(
            errno(f.getxattr(ino, OsStr::new("user.cache_mode"), 3)),
            libc::ERANGE
        );
        assert_eq!(xattr(&f, ino, "user.in_memory"), "0");
        assert_eq!(xattr(&f, ino, "user.nifti.shape"), "4,5,6,7");
        assert_eq!(xattr(&f, ino, "user.nifti.dtype"), "int16");
        assert_eq!(xattr(&f, ino, "user.nifti.volumes"), "7");
        assert_eq!(
            f.getxattr(ino, OsStr::new("user.nifti.shape"), 0).unwrap(),
            XattrValue::Size(7)
        );
        assert_eq!(
            f.getxattr(ino, OsStr::new("user.uncache"), 0).unwrap(),
            XattrValue::Size(0)
        );
        assert_eq!(
            errno(f.getxattr(ino, OsStr::new("user.nope"), 0)),
            libc::ENODATA
        );
        assert_eq!(
            errno(f.getxattr(ino, OsStr::new("user.nope"), 100)),
            libc::ENODATA
        );
        // Only user.* exists: other namespaces are not supported, so `ls`
        // stops asking after the first file.
        for other in [
            "security.selinux",
            "system.posix_acl_access",
            "trusted.x",
            "",
        ] {
            for size in [0, 100] {
                assert_eq!(
                    errno(f.getxattr(ino, OsStr::new(other), size)),
                    libc::EOPNOTSUPP,
                    "{other:?}"
                );
            }
            assert_eq!(
                errno(f.setxattr(ino, OsStr::new(other), b"x")),
                libc::EOPNOTSUPP
            );
            assert_eq!(
                errno(f.removexattr(ino, OsStr::new(other))),
                libc::EOPNOTSUPP
            );
        }
        // listxattr: every name, NUL-terminated.
        let mut want = Vec::new();
        for n in NAMES {
            want.extend_from_slice(n.as_bytes());
            want.push(0);
        }
        assert_eq!(
            f.listxattr(ino, 0).unwrap(),
            XattrValue::Size(want.len() as u32)
        );
        assert_eq!(
            f.listxattr(ino, want.len() as u32).unwrap(),
            XattrValue::Data(want.clone())
        );
        assert_eq!(
            f.listxattr(ino, 4096).unwrap(),
            XattrValue::Data(want.clone())
        );
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
    // View files: what they hold.
    for (path, shape, dtype, count) in [
        ("a.nii.d/vol_0003.nii", "4,5,6", "int16", "1"),
        ("a.nii.d/a.nii", "4,5,6,7", "int16", "7"),
        ("a.nii.d/vols_0001-0006_step2.nii", "4,5,6,3", "int16", "3"),
        ("a.nii.d/z/slice_0002.nii", "4,5,1,7", "int16", "7"),
        ("a.nii.d/x/slice_0003.nii", "1,5,6,7", "int16", "7"),
    ] {
        let ino = walk(&f, path);
        assert_eq!(xattr(&f, ino, "user.nifti.shape"), shape, "{path}");
        assert_eq!(xattr(&f, ino, "user.nifti.dtype"), dtype, "{path}");
        assert_eq!(xattr(&f, ino, "user.nifti.volumes"), count, "{path}");
        assert_eq!(
            errno(f.getxattr(ino, OsStr::new("user.cache_mode"), 0)),
            libc::ENODATA
        );
        assert_eq!(
            f.listxattr(ino, 100).unwrap(),
            XattrValue::Data(b"user.nifti.shape\0user.nifti.dtype\0user.nifti.volumes\0".to_vec())
        );
        assert_eq!(
            errno(f.setxattr(ino, OsStr::new("user.nifti.shape"), b"1")),
            libc::EACCES
        );
        assert_eq!(
            errno(f.getxattr(ino, OsStr::new("security.selinux"), 0)),
            libc::EOPNOTSUPP
        );
    }
    // Non-image entries: no attributes at all, ENODATA (never ENOSYS).
    let others = [
        walk(&f, "notes.txt"),
        walk(&f, "a.nii.d/z"),
        ROOT,
        walk(&f, "sub"),
        walk(&f, "bad.nii"),
        walk(&f, "x.nii.d"),
        walk(&f, ".nifuse"),
        walk(&f, ".nifuse/stats"),
    ];
    for ino in others {
        assert_eq!(
            f.listxattr(ino, 0).unwrap(),
            XattrValue::Size(0),
            "inode {ino}"
        );
        assert_eq!(
            f.listxattr(ino, 100).unwrap(),
            XattrValue::Data(Vec::new()),
            "inode {ino}"
        );
        for n in NAMES {
            assert_eq!(
                errno(f.getxattr(ino, OsStr::new(n), 0)),
                libc::ENODATA,
                "inode {ino} {n}"
            );
        }
        let e = errno(f.setxattr(ino, OsStr::new("user.cache_mode"), b"fill"));
        assert_ne!(e, libc::ENOSYS);
        assert_ne!(e, 0);
    }
    assert_eq!(
        errno(f.getxattr(999_999, OsStr::new("user.cache_mode"), 0)),
        libc::ENOENT
    );

    // cache_mode: set on NAME.d, seen on NAME; invalid values refused and ignored.
    f.setxattr(ad, OsStr::new("user.cache_mode"), b"unchanged")
        .unwrap();
    assert_eq!(xattr(&f, a, "user.cache_mode"), "unchanged");
    assert_eq!(
        xattr(&f, b, "user.cache_mode"),
        "fill",
        "other images keep the default"
    );
    for bad in [&b"bogus"[..], b"", b"FILL", b"fill unchanged", b" fill"] {
        assert_eq!(
            errno(f.setxattr(a, OsStr::new("user.cache_mode"), bad)),
            libc::EINVAL,
            "{bad:?}"
        );
    }
    assert_eq!(xattr(&f, ad, "user.cache_mode"), "unchanged");
    // Read-only attributes cannot be set; none is ENOSYS.
    for ro in [
        "user.in_memory",
        "user.nifti.shape",
        "user.nifti.dtype",
        "user.nifti.volumes",
    ] {
        let e = errno(f.setxattr(a, OsStr::new(ro), b"1"));
        assert!(
            e == libc::EACCES || e == libc::EPERM || e == libc::EROFS,
            "{ro}: errno {e}"
        );
    }

    // unchanged: reads do not fill.
    let v = walk(&f, "a.nii.d/vol_0002.nii");
    let (afile, _) = image(&[4, 5, 6, 7], 1, 0);
    assert_eq!(read_all(&f, v), expected_volume(&afile, VOL, 2));
    assert_eq!(xattr(&f, a, "user.in_memory"), "0");
    // fill (a trailing newline, as `setfattr -v` may send, is accepted).
    f.setxattr(a, OsStr::new("user.cache_mode"), b"fill\n")
        .unwrap();
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
    assert_eq!(
        errno(f.removexattr(a, OsStr::new("user.cache_mode"))),
        libc::EACCES
    );
    assert_eq!(
        errno(f.removexattr(a, OsStr::new("user.nope"))),
        libc::ENODATA
    );
}
