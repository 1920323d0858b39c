//! Mount tests of the tree and volume bytes, through the kernel with real programs.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const VOL: usize = 4 * 5 * 6 * 2;

/// Checks a volume file's bytes: header fields patched, voxels = volume k of `data`.
fn check_volume(file: &[u8], data: &[u8], k: usize) {
    assert_eq!(file.len(), 352 + VOL, "size of vol {k}");
    assert_eq!(&file[344..348], b"n+1\0");
    assert_eq!(i16::from_le_bytes([file[40], file[41]]), 3, "dim[0]");
    assert_eq!(i16::from_le_bytes([file[48], file[49]]), 1, "dim[4]");
    assert_eq!(
        f32::from_le_bytes([file[108], file[109], file[110], file[111]]),
        352.0
    );
    assert_eq!(&file[148..160], b"nifuse tests", "descrip copied");
    assert_eq!(
        &file[352..],
        &data[k * VOL..(k + 1) * VOL],
        "voxels of vol {k}"
    );
}

fn fill_basic(src: &Path) {
    let (img, _) = image4d(4, 5, 6, 7, 1);
    fs::write(src.join("scan.nii"), &img).unwrap();
    fs::create_dir(src.join("sub-01")).unwrap();
    fs::write(src.join("sub-01/bold.nii.gz"), gzip(&img)).unwrap();
    fs::write(src.join("notes.txt"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("scan.nii", src.join("link.nii")).unwrap();
}

#[test]
fn tree_mirrors_source_and_adds_volume_dirs() {
    let m = Mount::mount(fill_basic);
    assert_eq!(
        names(&m.mnt),
        [
            ".nifuse",
            "link.nii",
            "link.nii.d",
            "notes.txt",
            "scan.nii",
            "scan.nii.d",
            "sub-01"
        ]
    );
    assert_eq!(names(&m.path("sub-01")), ["bold.nii.gz", "bold.nii.gz.d"]);
    let vols: Vec<String> = (0..7).map(|k| format!("vol_{k:04}.nii")).collect();
    assert_eq!(volumes(&m.path("scan.nii.d")), vols);
    // Mirrored entries: same bytes and sizes, no write bits, symlink kept as a symlink.
    assert_eq!(cat(&m.path("notes.txt")), b"hello\n");
    assert_eq!(
        cat(&m.path("scan.nii")),
        fs::read(m.src.join("scan.nii")).unwrap()
    );
    let meta = fs::symlink_metadata(m.path("notes.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o222, 0);
    assert_eq!(
        meta.mtime(),
        fs::metadata(m.src.join("notes.txt")).unwrap().mtime()
    );
    assert_eq!(
        fs::read_link(m.path("link.nii")).unwrap(),
        Path::new("scan.nii")
    );
    // stat sizes from the header alone; inode numbers stable.
    let v = fs::metadata(m.path("scan.nii.d/vol_0003.nii")).unwrap();
    assert_eq!(v.len(), (352 + VOL) as u64);
    assert_eq!(
        v.ino(),
        fs::metadata(m.path("scan.nii.d/vol_0003.nii"))
            .unwrap()
            .ino()
    );
    let (ok, out, _) = run(
        Command::new("ls").arg("-l").arg(m.path("scan.nii.d")),
        Duration::from_secs(10),
    );
    assert!(
        ok && out.contains("vol_0006.nii") && out.contains(&(352 + VOL).to_string()),
        "{out}"
    );
    let (ok, out, _) = run(
        Command::new("stat")
            .args(["-c", "%s %F"])
            .arg(m.path("sub-01/bold.nii.gz.d/vol_0000.nii")),
        Duration::from_secs(10),
    );
    assert!(ok);
    assert_eq!(out.trim(), format!("{} regular file", 352 + VOL));
}

#[test]
fn volumes_hold_the_source_voxels_plain_gzip_and_symlinked() {
    let m = Mount::mount(fill_basic);
    let (_, data) = image4d(4, 5, 6, 7, 1);
    for dir in ["scan.nii.d", "sub-01/bold.nii.gz.d", "link.nii.d"] {
        for k in [0, 3, 6] {
            check_volume(&cat(&m.path(format!("{dir}/vol_{k:04}.nii"))), &data, k);
        }
    }
}

#[test]
fn unaligned_partial_and_concurrent_reads() {
    let m = Mount::mount(fill_basic);
    let (_, data) = image4d(4, 5, 6, 7, 1);
    for dir in ["scan.nii.d", "sub-01/bold.nii.gz.d"] {
        let whole: Vec<Vec<u8>> = (0..7)
            .map(|k| cat(&m.path(format!("{dir}/vol_{k:04}.nii"))))
            .collect();
        let f = fs::File::open(m.path(format!("{dir}/vol_0005.nii"))).unwrap();
        // Straddling the header/data boundary, inside the header, at and past EOF.
        for (off, len) in [
            (340u64, 30usize),
            (0, 1),
            (351, 2),
            (352, VOL),
            (353, 7),
            ((352 + VOL - 3) as u64, 10),
            ((352 + VOL) as u64, 5),
            (9999, 4),
        ] {
            let mut buf = vec![0u8; len];
            let n = f.read_at(&mut buf, off).unwrap();
            let start = (off as usize).min(whole[5].len());
            let end = (start + len).min(whole[5].len());
            assert_eq!(&buf[..n], &whole[5][start..end], "{dir} pread {off}+{len}");
        }
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let p = m.path(format!("{dir}/vol_{:04}.nii", t % 7));
                std::thread::spawn(move || {
                    (
                        t % 7,
                        (0..5).map(|_| fs::read(&p).unwrap()).collect::<Vec<_>>(),
                    )
                })
            })
            .collect();
        for t in threads {
            let (k, reads) = t.join().unwrap();
            for r in reads {
                check_volume(&r, &data, k);
            }
        }
    }
}

#[test]
fn every_change_is_refused_with_erofs_and_source_untouched() {
    let m = Mount::mount(fill_basic);
    let before = fs::read(m.src.join("scan.nii")).unwrap();
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(fs::write(m.path("new.txt"), b"x"), "create");
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .open(m.path("scan.nii"))
            .map(drop),
        "open for write",
    );
    erofs(
        fs::OpenOptions::new()
            .write(true)
            .open(m.path("scan.nii.d/vol_0000.nii"))
            .map(drop),
        "write volume",
    );
    erofs(fs::create_dir(m.path("d")), "mkdir");
    erofs(fs::rename(m.path("notes.txt"), m.path("n2.txt")), "rename");
    erofs(fs::remove_file(m.path("notes.txt")), "unlink");
    erofs(
        fs::set_permissions(m.path("notes.txt"), fs::Permissions::from_mode(0o777)),
        "chmod",
    );
    assert_eq!(fs::read(m.src.join("scan.nii")).unwrap(), before);
    assert_eq!(fs::read(m.src.join("notes.txt")).unwrap(), b"hello\n");
}

#[test]
fn bad_input_never_hangs_or_kills_the_daemon() {
    let m = Mount::mount(|src| {
        let (img, _) = image4d(4, 5, 6, 7, 2);
        fs::write(src.join("bad.nii"), b"this is not a NIfTI header at all").unwrap();
        fs::write(src.join("empty.nii"), b"").unwrap();
        fs::create_dir(src.join("dir.nii")).unwrap();
        std::os::unix::fs::symlink("loop2.nii", src.join("loop1.nii")).unwrap();
        std::os::unix::fs::symlink("loop1.nii", src.join("loop2.nii")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("outside.nii")).unwrap();
        let fifo = std::ffi::CString::new(src.join("fifo.nii").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        // Truncated: 7 volumes in the header, 4.5 present.
        fs::write(src.join("trunc.nii"), &img[..352 + VOL * 4 + VOL / 2]).unwrap();
        fs::write(src.join("ok.nii"), &img).unwrap();
    });
    let listing = names(&m.mnt);
    for plain in [
        "bad.nii",
        "empty.nii",
        "dir.nii",
        "loop1.nii",
        "fifo.nii",
        "outside.nii",
    ] {
        assert!(listing.contains(&plain.to_string()), "{plain} listed");
        assert!(
            !listing.contains(&format!("{plain}.d")),
            "{plain} has no .d: {listing:?}"
        );
    }
    assert_eq!(
        cat(&m.path("bad.nii")),
        b"this is not a NIfTI header at all"
    );
    let (_, data) = image4d(4, 5, 6, 7, 2);
    for k in 0..4 {
        check_volume(
            &cat(&m.path(format!("trunc.nii.d/vol_{k:04}.nii"))),
            &data,
            k,
        );
    }
    for k in 4..7 {
        let e =
            fs::read(m.path(format!("trunc.nii.d/vol_{k:04}.nii"))).expect_err("missing volume");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "vol {k}: {e}");
    }
    assert!(
        m.log().contains("trunc.nii"),
        "the missing range is logged: {}",
        m.log()
    );
    // Still serving after all that.
    check_volume(&cat(&m.path("ok.nii.d/vol_0006.nii")), &data, 6);
}

#[test]
fn names_widen_past_9999_volumes() {
    let m = Mount::mount(|src| {
        let data = bytes(10_001, 3);
        fs::write(
            src.join("many.nii"),
            nifti1(&[1, 1, 1, 10_001], 2, 8, 2001, &data),
        )
        .unwrap();
    });
    let v = volumes(&m.path("many.nii.d"));
    assert_eq!(v.len(), 10_001);
    assert_eq!(
        (v[0].as_str(), v[10_000].as_str()),
        ("vol_00000.nii", "vol_10000.nii")
    );
    let last = cat(&m.path("many.nii.d/vol_10000.nii"));
    assert_eq!(
        i16::from_le_bytes([last[68], last[69]]),
        0,
        "intent 2001 becomes 0"
    );
    assert_eq!(last[352..], bytes(10_001, 3)[10_000..]);
    assert!(
        fs::metadata(m.path("many.nii.d/vol_0001.nii")).is_err(),
        "4-digit name not in a 5-digit dir"
    );
}

#[test]
fn listing_a_tree_of_many_images_holds_no_source_files_open() {
    let m = Mount::mount(|src| {
        let (img, _) = image4d(2, 2, 2, 3, 9);
        for d in 0..10 {
            let dir = src.join(format!("sub-{d:02}"));
            fs::create_dir(&dir).unwrap();
            for i in 0..50 {
                fs::write(dir.join(format!("run-{i:02}.nii")), &img).unwrap();
                fs::write(dir.join(format!("run-{i:02}_gz.nii.gz")), gzip(&img)).unwrap();
            }
        }
    });
    let fds = || {
        fs::read_dir(format!("/proc/{}/fd", m.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    let (ok, out, err) = run(
        Command::new("find")
            .arg(&m.mnt)
            // MNT/sub-NN/NAME.d/vol_0002.nii: the volumes, not the float views' copies.
            .args(["-maxdepth", "3", "-name", "vol_0002.nii", "-size", "+0"]),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().count(),
        1000,
        "every image's last volume found by find"
    );
    let after = fds();
    assert!(
        after <= before + 4,
        "find over 1,000 images opened {} descriptors",
        after - before
    );
    // Reading opens only what is read.
    cat(&m.path("sub-03/run-07.nii.d/vol_0001.nii"));
    assert!(fds() <= after + 4);
}

/// Bytes the daemon has read through read(2)/pread(2) so far (its requests
/// from /dev/fuse included), from /proc/PID/io.
fn daemon_rchar(m: &Mount) -> u64 {
    let io = fs::read_to_string(format!("/proc/{}/io", m.pid())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rchar in /proc/PID/io: {io}"))
}

/// The case: `find` over 10,000 images and `ls -l` of a 1,200-volume
/// directory read headers only, and the mount itself reads nothing of the
/// tree. Voxel data is 128 KiB per image (sparse files), so reading even a
/// fraction of it would show in the daemon's byte count.
#[test]
fn find_over_10000_images_and_ls_of_1200_volumes_read_no_voxel_data() {
    const IMAGES: usize = 10_000;
    let head = |dims: &[i16]| nifti1(dims, 4, 16, 0, &[]);
    let m = Mount::source(|src| {
        let header = head(&[32, 32, 16, 4]);
        let len = header.len() as u64 + 32 * 32 * 16 * 4 * 2;
        for d in 0..100 {
            let dir = src.join(format!("sub-{d:03}"));
            fs::create_dir(&dir).unwrap();
            for i in 0..IMAGES / 100 {
                let f = fs::File::create(dir.join(format!("run-{i:02}.nii"))).unwrap();
                f.write_all_at(&header, 0).unwrap();
                f.set_len(len).unwrap();
            }
        }
        let header = head(&[16, 16, 16, 1200]);
        let f = fs::File::create(src.join("x.nii")).unwrap();
        f.write_all_at(&header, 0).unwrap();
        f.set_len(header.len() as u64 + 16 * 16 * 16 * 1200 * 2)
            .unwrap();
    })
    .start(&[]);
    let at_mount = daemon_rchar(&m);
    assert!(
        at_mount < 64 << 10,
        "mounting read {at_mount} bytes: work proportional to the tree"
    );

    let (ok, out, err) = run(
        // Down to MNT/sub/NAME.d/vol_K.nii: the views' own directories (x/ y/ z/,
        // float32/ float64/) hold tens of files per image more, not what this is about.
        Command::new("find").arg(&m.mnt).args([
            "-maxdepth",
            "3",
            "-path",
            "*/run-*.nii.d/vol_0003.nii",
            "-size",
            "+0",
        ]),
        Duration::from_secs(300),
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), IMAGES, "every image's last volume");
    let find = daemon_rchar(&m) - at_mount;
    // A header probe reads 540 bytes; requests from the kernel a few hundred
    // per image. One volume is 32 KiB, the image 128 KiB.
    assert!(
        find < (IMAGES as u64) * (4 << 10),
        "find over {IMAGES} images made the daemon read {find} bytes"
    );

    let before = daemon_rchar(&m);
    let (ok, out, err) = run(
        Command::new("ls").arg("-l").arg(m.path("x.nii.d")),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("vol_")).count(), 1200);
    let ls = daemon_rchar(&m) - before;
    eprintln!("daemon read: {at_mount} bytes mounting, {find} for find, {ls} for ls -l");
    // Requests are ~100 bytes per volume; the volumes' data is 8 KiB each.
    assert!(ls < 1200 * 512, "ls -l of 1,200 volumes read {ls} bytes");
    let stats = json::parse_json(&m.stats());
    let totals = stats.get("totals");
    assert_eq!(
        (totals.get("hits").num(), totals.get("misses").num()),
        (0.0, 0.0),
        "a volume was read: {}",
        m.stats()
    );
}
