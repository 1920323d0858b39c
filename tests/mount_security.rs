//! Security: ownership and modes as in SOURCE minus write bits, enforced by
//! the kernel (`default_permissions`), other users kept out without
//! `allow_other`, symlinks never followed out of SOURCE, the control files'
//! permissions, and SOURCE left exactly as it was by any workload.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs `args` as uid/gid 65534 with no supplementary groups: (ok, stdout, stderr).
fn as_nobody(args: &[&str]) -> (bool, String, String) {
    run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args),
        Duration::from_secs(10),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lets other users reach the mount point (tempdir makes its directory 0700).
fn open_up(m: &Mount) {
    fs::set_permissions(m.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn fill_perms(src: &Path) {
    let (img, _) = image4d(4, 4, 4, 3, 7);
    fs::write(src.join("public.txt"), b"for everyone\n").unwrap();
    fs::write(src.join("secret.txt"), b"root only\n").unwrap();
    fs::write(src.join("public.nii"), &img).unwrap();
    fs::write(src.join("secret.nii"), &img).unwrap();
    fs::write(src.join("theirs.nii"), &img).unwrap();
    for (name, mode) in [
        ("public.txt", 0o644),
        ("secret.txt", 0o600),
        ("public.nii", 0o644),
        ("secret.nii", 0o600),
        ("theirs.nii", 0o640),
    ] {
        fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    chown(&src.join("theirs.nii"), 1234, 1234);
}

#[test]
fn files_show_the_source_owner_and_mode_minus_write_bits() {
    let m = Mount::mount(fill_perms);
    let meta = fs::symlink_metadata(m.path("theirs.nii")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (1234, 1234),
        "owner of the mirrored file"
    );
    assert_eq!(meta.mode() & 0o7777, 0o440, "640 minus write bits");
    let d = fs::metadata(m.path("theirs.nii.d")).unwrap();
    assert_eq!((d.uid(), d.gid()), (1234, 1234), "owner of NAME.d");
    assert_eq!(
        d.mode() & 0o222,
        0,
        "NAME.d has no write bits: {:o}",
        d.mode()
    );
    assert_eq!(
        d.mode() & 0o444,
        0o440,
        "NAME.d readable by whom the image is: {:o}",
        d.mode()
    );
    let v = fs::metadata(m.path("theirs.nii.d/vol_0001.nii")).unwrap();
    assert_eq!(
        (v.uid(), v.gid(), v.mode() & 0o7777),
        (1234, 1234, 0o440),
        "a volume of it"
    );
    let p = fs::metadata(m.path("secret.txt")).unwrap();
    assert_eq!((p.uid(), p.mode() & 0o7777), (0, 0o400));
    // A change of owner or mode in SOURCE shows up once the kernel's attributes expire (1 s TTL).
    fs::set_permissions(m.src.join("theirs.nii"), fs::Permissions::from_mode(0o604)).unwrap();
    chown(&m.src.join("theirs.nii"), 4321, 4321);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let meta = loop {
        let meta = fs::symlink_metadata(m.path("theirs.nii")).unwrap();
        if meta.uid() == 4321 || std::time::Instant::now() > deadline {
            break meta;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (4321, 0o404));
    // Noticing the change told the kernel to forget theirs.nii.d (from the
    // invalidation thread: wait for it to land).
    let v = loop {
        let v = fs::metadata(m.path("theirs.nii.d/vol_0001.nii")).unwrap();
        if v.uid() == 4321 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (v.uid(), v.mode() & 0o7777),
        (4321, 0o404),
        "volumes follow the image's owner and mode"
    );
}

#[test]
fn without_allow_other_other_users_are_refused_entirely() {
    let m = Mount::mount(fill_perms);
    open_up(&m);
    for name in ["public.txt", "public.nii", "public.nii.d/vol_0000.nii"] {
        let (ok, _, err) = as_nobody(&["cat", s(&m.path(name))]);
        assert!(
            !ok && err.contains("Permission denied"),
            "nobody reading {name} without allow_other: {err}"
        );
    }
    let (ok, _, err) = as_nobody(&["ls", s(&m.mnt)]);
    assert!(
        !ok && err.contains("Permission denied"),
        "nobody listing the mount: {err}"
    );
    // Root itself is let in.
    assert_eq!(cat(&m.path("public.txt")), b"for everyone\n");
}

#[test]
fn with_allow_other_the_kernel_enforces_the_source_modes() {
    let m = Mount::source(fill_perms).start(&["-o", "allow_other"]);
    open_up(&m);
    let (ok, out, err) = as_nobody(&["cat", s(&m.path("public.txt"))]);
    assert!(
        ok && out == "for everyone\n",
        "nobody reads a 0644 file: {err}"
    );
    let (ok, out, err) = as_nobody(&["cat", s(&m.path("public.nii.d/vol_0002.nii"))]);
    assert!(
        ok && out.len() > 352,
        "nobody reads a volume of a 0644 image: {err}"
    );
    for name in [
        "secret.txt",
        "secret.nii",
        "secret.nii.d/vol_0000.nii",
        "theirs.nii",
        "theirs.nii.d/vol_0000.nii",
    ] {
        let (ok, _, err) = as_nobody(&["cat", s(&m.path(name))]);
        assert!(
            !ok && err.contains("Permission denied"),
            "nobody must not read {name}: {err}"
        );
    }
    let (ok, _, err) = as_nobody(&["ls", s(&m.path("secret.nii.d"))]);
    assert!(
        !ok && err.contains("Permission denied"),
        "nobody must not list secret.nii.d (0600 image): {err}"
    );
    // The volume a denied user could not read is still fine for root.
    assert!(cat(&m.path("secret.nii.d/vol_0000.nii")).len() > 352);
}

#[test]
fn control_files_drop_caches_for_the_owner_only_and_stats_read_only_for_all() {
    let m = Mount::source(|src| fs::write(src.join("a.nii"), image4d(8, 8, 8, 4, 3).0).unwrap())
        .start(&["-o", "allow_other"]);
    open_up(&m);
    cat(&m.path("a.nii.d/vol_0003.nii"));
    let start = std::time::Instant::now();
    while m.getfattr("a.nii", "user.in_memory") != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a.nii never filled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let drop = m.path(".nifuse/drop_caches");
    let stats = m.path(".nifuse/stats");
    let (ok, _, err) = as_nobody(&["sh", "-c", &format!("echo 1 > {}", s(&drop))]);
    assert!(
        !ok && err.contains("Permission denied"),
        "nobody writing drop_caches: {err}"
    );
    assert_eq!(
        m.getfattr("a.nii", "user.in_memory"),
        "1",
        "nobody's attempt dropped nothing"
    );
    let (ok, _, err) = as_nobody(&[
        "setfattr",
        "-n",
        "user.uncache",
        "-v",
        "1",
        s(&m.path("a.nii")),
    ]);
    assert!(!ok, "nobody must not uncache root's image: {err}");
    let (ok, _, err) = as_nobody(&[
        "setfattr",
        "-n",
        "user.cache_mode",
        "-v",
        "unchanged",
        s(&m.path("a.nii")),
    ]);
    assert!(
        !ok,
        "nobody must not change root's image's cache mode: {err}"
    );
    assert_eq!(m.getfattr("a.nii", "user.in_memory"), "1");
    assert_eq!(m.getfattr("a.nii", "user.cache_mode"), "fill");
    // Stats: readable by all, writable by none (root included).
    let (ok, out, err) = as_nobody(&["cat", s(&stats)]);
    assert!(
        ok && out.contains("\"totals\""),
        "nobody reads stats: {err}"
    );
    let (ok, _, err) = as_nobody(&["sh", "-c", &format!("echo x > {}", s(&stats))]);
    assert!(
        !ok && err.contains("Permission denied"),
        "nobody writing stats: {err}"
    );
    let e = fs::write(&stats, b"x").expect_err("root writing stats");
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
        ),
        "{e}"
    );
    let meta = fs::metadata(&stats).unwrap();
    assert_eq!(
        meta.mode() & 0o222,
        0,
        "stats has no write bits: {:o}",
        meta.mode()
    );
    let meta = fs::metadata(&drop).unwrap();
    assert_eq!(
        meta.mode() & 0o022,
        0,
        "drop_caches writable by its owner only: {:o}",
        meta.mode()
    );
    // The owner can.
    fs::write(&drop, b"1\n").unwrap();
    assert_eq!(m.getfattr("a.nii", "user.in_memory"), "0");
}

#[test]
fn symlinks_are_shown_as_symlinks_and_never_followed_out_of_source() {
    let (img, data) = image4d(4, 4, 4, 3, 9);
    let mut outside = PathBuf::new();
    let m = Mount::mount(|src| {
        outside = src.parent().unwrap().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("real.nii"), &img).unwrap();
        fs::write(outside.join("other.nii"), &img).unwrap();
        fs::write(src.join("inside.nii"), &img).unwrap();
        let link = |t: &str, n: &str| std::os::unix::fs::symlink(t, src.join(n)).unwrap();
        link(outside.join("real.nii").to_str().unwrap(), "abs_out.nii");
        link("../outside/real.nii", "rel_out.nii");
        link("sub/../../outside/real.nii", "dotdot_out.nii");
        link(outside.to_str().unwrap(), "outdir");
        link("inside.nii", "in_link.nii");
        fs::create_dir(src.join("sub")).unwrap();
        link("../inside.nii", "sub/up_link.nii");
        // Becomes a symlink out of SOURCE after the mount (below).
        fs::write(src.join("swapped.nii"), &img).unwrap();
    });
    let listing = names(&m.mnt);
    for name in ["abs_out.nii", "rel_out.nii", "dotdot_out.nii"] {
        assert!(listing.contains(&name.to_string()), "{listing:?}");
        assert!(
            !listing.contains(&format!("{name}.d")),
            "{name} points out of SOURCE: no .d ({listing:?})"
        );
        let meta = fs::symlink_metadata(m.path(name)).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{name} is a symlink in the mount"
        );
        assert_eq!(
            fs::read_link(m.path(name)).unwrap(),
            fs::read_link(m.src.join(name)).unwrap(),
            "{name}: stored target"
        );
        let e = fs::metadata(m.path(format!("{name}.d/vol_0000.nii")))
            .expect_err("no volumes through it");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{name}: {e}");
    }
    // A directory symlink out of SOURCE: the kernel follows it to the real
    // directory, where no nifuse volumes exist.
    assert!(
        fs::symlink_metadata(m.path("outdir"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::metadata(m.path("outdir/real.nii.d")).is_err(),
        "no .d beyond a symlink out of SOURCE"
    );
    // Symlinks within SOURCE do get volumes, with the target's voxels.
    assert!(
        listing.contains(&"in_link.nii.d".to_string()),
        "{listing:?}"
    );
    assert!(names(&m.path("sub")).contains(&"up_link.nii.d".to_string()));
    assert_eq!(
        &cat(&m.path("sub/up_link.nii.d/vol_0002.nii"))[352..],
        &data[2 * 128..]
    );
    // A file swapped for a symlink out of SOURCE while mounted stops being served.
    assert_eq!(volumes(&m.path("swapped.nii.d")).len(), 3);
    let p = m.path("swapped.nii.d/vol_0000.nii");
    cat(&p);
    fs::write(outside.join("other.nii"), image4d(4, 4, 4, 3, 10).0).unwrap();
    fs::remove_file(m.src.join("swapped.nii")).unwrap();
    std::os::unix::fs::symlink(outside.join("other.nii"), m.src.join("swapped.nii")).unwrap();
    // Gone once the kernel's names expire (1 s TTL).
    wait_for(
        Duration::from_secs(10),
        "swapped.nii (now out of SOURCE) loses its .d",
        || !names(&m.mnt).contains(&"swapped.nii.d".to_string()),
    );
    match fs::read(&p) {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}"),
        Ok(v) => panic!("served {} bytes through a symlink out of SOURCE", v.len()),
    }
}

// ---------------------------------------------------------------------------
// SOURCE untouched by any workload
// ---------------------------------------------------------------------------

/// Everything that identifies one entry of SOURCE, except its access time.
#[derive(Debug, PartialEq, Eq)]
struct Snap {
    kind: u32,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Hash of the contents (files) or the target (symlinks).
    content: u64,
    xattrs: Vec<String>,
}

fn llistxattr(p: &Path) -> Vec<String> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid path and buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut v: Vec<String> = buf[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    v.sort();
    v
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Snap> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        let mut h = DefaultHasher::new();
        if meta.file_type().is_file() {
            fs::read(&p).unwrap().hash(&mut h);
        } else if meta.file_type().is_symlink() {
            fs::read_link(&p).unwrap().hash(&mut h);
        } else if meta.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(
            p.strip_prefix(root).unwrap().to_path_buf(),
            Snap {
                kind: meta.mode() & 0o170000,
                size: meta.size(),
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                ino: meta.ino(),
                nlink: meta.nlink(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
                content: h.finish(),
                xattrs: llistxattr(&p),
            },
        );
    }
    out
}

#[test]
fn a_full_workload_leaves_source_byte_and_metadata_identical() {
    let mut m = Mount::source(|src| {
        let (img, _) = image4d(8, 8, 8, 6, 21);
        fs::write(src.join("plain.nii"), &img).unwrap();
        fs::create_dir(src.join("sub")).unwrap();
        fs::write(src.join("sub/bold.nii.gz"), gzip(&img)).unwrap();
        let mut hdr = img[..348].to_vec();
        hdr[344..348].copy_from_slice(b"ni1\0");
        hdr[108..112].copy_from_slice(&0f32.to_le_bytes());
        fs::write(src.join("pair.hdr"), hdr).unwrap();
        fs::write(src.join("pair.img"), &img[352..]).unwrap();
        fs::write(src.join("notes.txt"), b"notes\n").unwrap();
        fs::write(src.join("bad.nii"), b"not an image").unwrap();
        std::os::unix::fs::symlink("plain.nii", src.join("link.nii")).unwrap();
        fs::set_permissions(src.join("notes.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        chown(&src.join("sub/bold.nii.gz"), 1234, 1234);
    })
    .start(&["-o", "allow_other"]);
    let before = snapshot(&m.src);

    // Reads of everything, cache control, stats.
    for img in ["plain.nii", "sub/bold.nii.gz", "pair.hdr", "link.nii"] {
        for k in 0..6 {
            assert_eq!(
                cat(&m.path(format!("{img}.d/vol_{k:04}.nii"))).len(),
                352 + 1024
            );
        }
        assert!(m.setfattr(img, "user.cache_mode", "unchanged").0);
        assert!(m.setfattr(&format!("{img}.d"), "user.uncache", "1").0);
        assert!(m.setfattr(img, "user.cache_mode", "fill").0);
        let _ = m.getfattr(img, "user.nifti.shape");
        // Attributes nifuse does not own must not land on the source file.
        let _ = setxattr(&m.path(img), "user.evil", b"x");
        let _ = setxattr(&m.path(img), "trusted.evil", b"x");
    }
    for f in ["notes.txt", "bad.nii", "pair.img"] {
        cat(&m.path(f));
        let _ = setxattr(&m.path(f), "user.evil", b"x");
        let _ = setxattr(&m.path(f), "user.cache_mode", b"fill");
    }
    fs::write(m.path(".nifuse/drop_caches"), b"1\n").unwrap();
    let _ = fs::read(m.path(".nifuse/stats")).unwrap();
    fs::write("/proc/sys/vm/drop_caches", b"2\n").unwrap();

    // Every kind of change attempted through the mount, as root and as nobody.
    open_up(&m);
    let mut refused = Vec::new();
    let mut attempt = |what: &str, r: std::io::Result<()>| {
        if r.is_ok() {
            refused.push(format!("{what} SUCCEEDED"));
        }
    };
    let p = |r: &str| m.path(r);
    attempt(
        "write",
        fs::OpenOptions::new()
            .write(true)
            .open(p("notes.txt"))
            .map(drop),
    );
    attempt(
        "append",
        fs::OpenOptions::new()
            .append(true)
            .open(p("plain.nii"))
            .map(drop),
    );
    attempt(
        "truncate",
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(p("pair.img"))
            .map(drop),
    );
    attempt(
        "truncate via set_len",
        fs::File::open(p("plain.nii")).and_then(|f| f.set_len(0)),
    );
    attempt("create", fs::write(p("new.txt"), b"x"));
    attempt("create in sub", fs::write(p("sub/new.nii"), b"x"));
    attempt(
        "create in .d",
        fs::write(p("plain.nii.d/vol_9999.nii"), b"x"),
    );
    attempt("mkdir", fs::create_dir(p("newdir")));
    attempt("rmdir", fs::remove_dir(p("sub")));
    attempt("unlink", fs::remove_file(p("notes.txt")));
    attempt(
        "unlink volume",
        fs::remove_file(p("plain.nii.d/vol_0000.nii")),
    );
    attempt("unlink symlink", fs::remove_file(p("link.nii")));
    attempt("rename", fs::rename(p("notes.txt"), p("n2.txt")));
    attempt(
        "rename into sub",
        fs::rename(p("plain.nii"), p("sub/plain.nii")),
    );
    attempt("rename over", fs::rename(p("bad.nii"), p("plain.nii")));
    attempt(
        "symlink",
        std::os::unix::fs::symlink("/etc/passwd", p("pw.nii")),
    );
    attempt("hard link", fs::hard_link(p("plain.nii"), p("hard.nii")));
    attempt(
        "chmod",
        fs::set_permissions(p("plain.nii"), fs::Permissions::from_mode(0o777)),
    );
    attempt(
        "chmod dir",
        fs::set_permissions(p("sub"), fs::Permissions::from_mode(0o777)),
    );
    attempt(
        "chown",
        std::os::unix::fs::lchown(p("notes.txt"), Some(0), Some(0)),
    );
    attempt(
        "utimes",
        fs::File::open(p("plain.nii"))
            .and_then(|f| f.set_modified(std::time::SystemTime::UNIX_EPOCH)),
    );
    for cmd in [
        format!("echo x >> {}", s(&p("plain.nii"))),
        format!("touch {}", s(&p("notes.txt"))),
        format!("touch {}", s(&p("created.txt"))),
        format!("mv {} {}", s(&p("notes.txt")), s(&p("moved.txt"))),
        format!("rm -f {}", s(&p("bad.nii"))),
    ] {
        let (ok, _, _) = run(
            Command::new("sh").args(["-c", &cmd]),
            Duration::from_secs(10),
        );
        if ok {
            refused.push(format!("as root: `{cmd}` SUCCEEDED"));
        }
        let (ok, _, _) = as_nobody(&["sh", "-c", &cmd]);
        if ok {
            refused.push(format!("as nobody: `{cmd}` SUCCEEDED"));
        }
    }
    assert!(is_mounted(&m.mnt));
    assert!(m.stop_with(libc::SIGTERM), "clean unmount: {}", m.log());
    assert!(!is_mounted(&m.mnt));

    let after = snapshot(&m.src);
    let mut diffs = Vec::new();
    for (path, b) in &before {
        match after.get(path) {
            None => diffs.push(format!("{} was removed", path.display())),
            Some(a) if a != b => diffs.push(format!(
                "{} changed:\n    before {b:?}\n    after  {a:?}",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("{} was added", path.display()));
    }
    assert!(
        refused.is_empty(),
        "changes through the mount were not refused: {refused:#?}"
    );
    assert!(diffs.is_empty(), "SOURCE changed:\n{}", diffs.join("\n"));
}
