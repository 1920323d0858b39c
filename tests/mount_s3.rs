//! Mount tests of object stores (`nifuse mount s3://BUCKET/PREFIX`) against
//! real S3 servers on the loopback: the generated image set read bit for bit
//! like a local mount of the same files and through the nibabel
//! cross-check, listings past one page, keys with spaces and unicode, the
//! requests one lookup and one volume cost, signed requests to a second
//! server, and the one-line failures of `mount`. Failures of the store
//! while mounted are in `mount_s3_failure.rs`.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::s3::{self, KEYS, Server, fetched, mount_s3, put, put_tree, total, venv_bin};
use common::s3proxy::Proxy;
use common::*;

/// `make_images.py` (the cross-check's generated set: every datatype, both
/// byte orders, NIfTI-1/2, pairs, gzip, 3D to 7D, 10,001 volumes, ...) into `dir`.
fn make_images(dir: &Path) {
    let (ok, _, err) = run(
        Command::new(venv_bin("python"))
            .arg(s3::repo().join("scripts/make_images.py"))
            .arg(dir),
        Duration::from_secs(300),
    );
    assert!(ok, "make_images.py: {err}");
}

/// The names of a directory of the local mount as an object store shows
/// them: no symlinks (nor their NAME.d), no directories without objects.
fn object_names(local_mnt: &Path, src: &Path, rel: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !src.join(rel).is_dir() {
        return names(&local_mnt.join(rel)).into_iter().collect(); // a NAME.d
    }
    for name in names(&local_mnt.join(rel)) {
        let base = name.strip_suffix(".d").unwrap_or(&name);
        let in_src = src.join(rel).join(base);
        let Ok(meta) = fs::symlink_metadata(&in_src) else {
            continue;
        };
        let has_objects = |d: &Path| {
            walk(d)
                .iter()
                .any(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        };
        if meta.file_type().is_symlink() || meta.is_dir() && !has_objects(&in_src) {
            continue;
        }
        out.insert(name);
    }
    out
}

/// Every path under `dir` (not following symlinks).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// Threads comparing files at once (12 were no faster than 4).
const READERS: usize = 4;

/// Compares the tree under `rel` of the object-store mount `s3m` with the
/// local mount `local` of the same files: the same names, and every file,
/// volumes included, byte for byte (of the float and slice views a sample:
/// see `list_both`). Returns the number of files compared.
fn compare(local: &Mount, s3m: &Mount, rel: &Path) -> usize {
    let mut files = Vec::new();
    list_both(local, s3m, rel, &mut files);
    // Read by a few threads at once: the two daemons serve requests on
    // several threads each, and each read also waits on the store.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    // A read that never returns must fail the test, not hang it: past the
    // deadline the FUSE connection is aborted and the stuck reads fail.
    let conn = format!(
        "/sys/fs/fuse/connections/{}/abort",
        libc::minor(fs::metadata(&s3m.mnt).unwrap().dev())
    );
    std::thread::scope(|s| {
        for _ in 0..READERS {
            s.spawn(|| {
                // Counted also when the comparison panics.
                let _done = Counted(&finished);
                while let Some(p) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    compare_file(local, s3m, p);
                }
            });
        }
        s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(900);
            while finished.load(Ordering::Relaxed) < READERS {
                if std::time::Instant::now() > deadline {
                    eprintln!("compare: reads still stuck after 900 s; aborting {conn}");
                    let _ = fs::write(&conn, "1");
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    });
    files.len()
}

/// Adds one to its counter when dropped.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The files under `rel`, after checking that both mounts list the same
/// names in every directory.
fn list_both(local: &Mount, s3m: &Mount, rel: &Path, files: &mut Vec<PathBuf>) {
    let want = object_names(&local.mnt, &local.src, rel);
    let got: BTreeSet<String> = names(&s3m.path(rel))
        .into_iter()
        .filter(|n| !(rel.as_os_str().is_empty() && n == ".nifuse"))
        .collect();
    assert_eq!(got, want, "listing of {}", rel.display());
    // The float and slice views repeat the volumes' reads in other shapes,
    // thousands per image: their contents are compared for a sample
    // (first, last, every 50th; every name is listed above), all else whole.
    let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
    let sampled = parts
        .iter()
        .position(|c| c.ends_with(".d"))
        .is_some_and(|d| {
            parts[d + 1..]
                .iter()
                .any(|c| ["float32", "float64", "x", "y", "z"].contains(&c.as_ref()))
        });
    for (i, name) in want.iter().enumerate() {
        if sampled && !(i < 2 || i + 2 >= want.len() || i % 50 == 0) {
            continue;
        }
        let p = rel.join(name);
        let meta = fs::metadata(local.path(&p)).expect("stat in the local mount");
        if meta.is_dir() {
            list_both(local, s3m, &p, files);
        } else {
            files.push(p);
        }
    }
}

fn compare_file(local: &Mount, s3m: &Mount, p: &Path) {
    let (a, b) = (fs::read(local.path(p)), fs::read(s3m.path(p)));
    match (a, b) {
        (Ok(a), Ok(b)) => assert!(a == b, "{} differs", p.display()),
        // Truncated sources: the same volumes fail in both.
        (Err(a), Err(b)) => assert_eq!(a.raw_os_error(), b.raw_os_error(), "{}", p.display()),
        (a, b) => panic!(
            "{}: local {:?}, object store {:?}",
            p.display(),
            a.err(),
            b.err()
        ),
    }
}

#[test]
fn generated_images_read_bit_for_bit_like_a_local_mount_and_pass_the_crosscheck() {
    let local = Mount::source(make_images).start(&["--cache-mode", "unchanged"]);
    let server = Server::s3s(false);
    server.create_bucket("gen");
    let uploaded = put_tree(&server.client("gen"), "ds", &local.src);
    assert!(uploaded > 100, "{uploaded} files uploaded");
    // The nibabel / nifti_tool cross-check, on a mount with default settings.
    let s3m = mount_s3("s3://gen/ds", &server.endpoint(), &["--no-sign-request"]);
    let (ok, out, err) = run(
        Command::new(venv_bin("python"))
            .arg(s3::repo().join("scripts/crosscheck.py"))
            .args(["--object-store", "--mounted"])
            .arg(&s3m.mnt)
            .arg("--source")
            .arg(&local.src),
        Duration::from_secs(900),
    );
    assert!(
        ok && out.contains(" 0 failed"),
        "crosscheck.py: {out}\n{err}"
    );
    drop(s3m);
    // Every file and volume, byte for byte, against the local mount.
    let s3m = mount_s3(
        "s3://gen/ds",
        &server.endpoint(),
        &["--no-sign-request", "--cache-mode", "unchanged"],
    );
    let n = compare(&local, &s3m, Path::new(""));
    assert!(n > 20_000, "{n} files compared");
    let problems: Vec<_> = s3m
        .log()
        .lines()
        .filter(|l| l.contains("GET "))
        .map(String::from)
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn listings_go_past_one_page_with_spaces_and_unicode_in_keys() {
    let server = Server::s3s(false);
    server.create_bucket("pages");
    let root = server.root.clone().unwrap().join("pages");
    let many = root.join("ds/many");
    fs::create_dir_all(&many).unwrap();
    let expected: BTreeSet<String> = (0..2345).map(|i| format!("obj {i:04} ü ✓.txt")).collect();
    for name in &expected {
        fs::write(many.join(name), name.as_bytes()).unwrap();
    }
    let (img, data) = image4d(4, 5, 6, 7, 3);
    let sub = root.join("ds/sub ü 1");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("bild mit leerzeichen ü.nii"), &img).unwrap();
    fs::write(sub.join("bild ü.nii.gz"), gzip(&img)).unwrap();
    let proxy = Proxy::start(server.port);
    // Object-store settings inside -o, as fstab passes them.
    let opts = format!(
        "no_sign_request,endpoint_url={},metadata_ttl=300",
        proxy.endpoint()
    );
    let m = Mount::source(|_| {}).start_source(OsStr::new("s3://pages/ds"), &["-o", &opts], &[]);
    let got: BTreeSet<String> = names(&m.path("many")).into_iter().collect();
    assert_eq!(got, expected);
    let pages = |p: &Proxy| {
        p.seen()
            .iter()
            .filter(|s| s.is_list() && s.target.contains("prefix=ds%2Fmany%2F"))
            .count()
    };
    assert_eq!(pages(&proxy), 3, "2,345 keys are three pages of 1,000");
    assert_eq!(names(&m.path("many")).len(), 2345);
    assert_eq!(pages(&proxy), 3, "listed again within --metadata-ttl");
    for i in [0, 999, 1000, 2344] {
        let name = format!("obj {i:04} ü ✓.txt");
        assert_eq!(cat(&m.path(format!("many/{name}"))), name.as_bytes());
    }
    for image in ["bild mit leerzeichen ü.nii", "bild ü.nii.gz"] {
        for k in [0usize, 6] {
            let vol = cat(&m.path(format!("sub ü 1/{image}.d/vol_{k:04}.nii")));
            assert_eq!(
                &vol[352..],
                &data[k * 240..(k + 1) * 240],
                "{image} volume {k}"
            );
        }
    }
    // Owned by the mounting user; files 0444, directories 0555.
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    for (p, mode) in [
        ("many", 0o40555),
        ("many/obj 0001 ü ✓.txt", 0o100444),
        ("sub ü 1/bild ü.nii.gz.d", 0o40555),
    ] {
        let meta = fs::metadata(m.path(p)).unwrap();
        assert_eq!(
            (meta.mode(), meta.uid(), meta.gid()),
            (mode, uid, gid),
            "{p}"
        );
    }
    assert!(total(&m, "list_requests") >= 5);
}

/// An int16 image of 128x128x32x8 (1 MiB volumes): a smooth signal plus
/// noise, which compresses in deflate blocks of tens of KiB, as scans do.
fn counted_image() -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    for i in 0..128 * 128 * 32 * 8u32 {
        let v = ((i % 128) * 3 + (i / 16384) % 50 + (i.wrapping_mul(2_654_435_761) >> 25)) as i16;
        data.extend_from_slice(&v.to_le_bytes());
    }
    (nifti1(&[128, 128, 32, 8], 4, 16, 0, &data), data)
}

const VOL: u64 = 128 * 128 * 32 * 2;

#[test]
fn a_lookup_costs_one_ranged_get_of_64_kib_and_a_volume_one_more() {
    let server = Server::s3s(false);
    server.create_bucket("cnt");
    let (img, data) = counted_image();
    // zlib's default level, as nibabel writes (level 1 of zlib-rs makes
    // blocks of megabytes, leaving a gzip index few places to resume at).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &img).unwrap();
    let gz = enc.finish().unwrap();
    let s3c = server.client("cnt");
    put(&s3c, "x.nii", &img);
    put(&s3c, "x.nii.gz", &gz);
    let proxy = Proxy::start(server.port);
    let index = tempfile::tempdir().unwrap();
    let idx = index.path().to_str().unwrap();
    let args = [
        "--no-sign-request",
        "--cache-mode",
        "unchanged",
        "--index-dir",
        idx,
    ];
    let m = mount_s3("s3://cnt", &proxy.endpoint(), &args);
    assert!(fs::metadata(m.path("x.nii.d")).unwrap().is_dir());
    let gets = |p: &Proxy, key: &str| -> Vec<s3proxy::Seen> {
        p.seen().into_iter().filter(|s| s.is_get_of(key)).collect()
    };
    let head = gets(&proxy, "/x.nii");
    assert_eq!(head.len(), 1, "{head:?}");
    assert_eq!(head[0].range.as_deref(), Some("bytes=0-65535"));
    proxy.clear();
    let k = 5u64;
    let vol = cat(&m.path(format!("x.nii.d/vol_{k:04}.nii")));
    assert_eq!(
        &vol[352..],
        &data[(k * VOL) as usize..((k + 1) * VOL) as usize]
    );
    let got = gets(&proxy, "/x.nii");
    assert_eq!(got.len(), 1, "one GET for one uncompressed volume: {got:?}");
    assert!(
        got[0].if_match.is_some(),
        "the ETag first seen goes with every later GET"
    );
    let (bytes, requests) = fetched(&m, "x.nii");
    assert_eq!(requests, 2);
    assert!(
        bytes - 65536 <= VOL + (128 << 10),
        "{bytes} bytes for a volume of {VOL}"
    );
    // A compressed image: the header inflated from one GET; the first pass
    // fetches the object once; with the saved index, a new mount fetches
    // about one compressed volume per volume.
    proxy.clear();
    assert!(fs::metadata(m.path("x.nii.gz.d")).unwrap().is_dir());
    assert_eq!(gets(&proxy, "/x.nii.gz").len(), 1);
    let vol = cat(&m.path("x.nii.gz.d/vol_0002.nii"));
    assert_eq!(&vol[352..], &data[(2 * VOL) as usize..(3 * VOL) as usize]);
    let (bytes, _) = fetched(&m, "x.nii.gz");
    assert!(
        bytes <= gz.len() as u64,
        "first pass: {bytes} bytes of a {}-byte object",
        gz.len()
    );
    // The index is saved when the volume file is released (after `cat` exits).
    let start = std::time::Instant::now();
    while !fs::read_dir(index.path())
        .unwrap()
        .any(|e| e.unwrap().path().extension() == Some("gzidx".as_ref()))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no gzip index saved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(m);
    proxy.clear();
    let m = mount_s3("s3://cnt", &proxy.endpoint(), &args);
    let vol = cat(&m.path("x.nii.gz.d/vol_0006.nii"));
    assert_eq!(&vol[352..], &data[(6 * VOL) as usize..(7 * VOL) as usize]);
    let (bytes, _) = fetched(&m, "x.nii.gz");
    let per_volume = gz.len() as u64 / 8;
    assert!(
        bytes <= 3 * per_volume + (64 << 10),
        "{bytes} bytes with the index; a volume is ~{per_volume}"
    );
}

#[test]
fn signed_requests_to_moto_read_right_and_send_if_match_with_the_listed_etag() {
    let server = Server::moto();
    server.create_bucket("moto-bucket");
    let s3c = server.client("moto-bucket");
    let (img, data) = image4d(16, 16, 8, 5, 9);
    put(&s3c, "study/a.nii", &img);
    put(&s3c, "study/b.nii.gz", &gzip(&img));
    let mut hdr = img[..348].to_vec();
    hdr[344..348].copy_from_slice(b"ni1\0");
    hdr[108..112].copy_from_slice(&0f32.to_le_bytes());
    put(&s3c, "study/c.hdr", &hdr);
    put(&s3c, "study/c.img", &img[352..]);
    let proxy = Proxy::start(server.port);
    // Endpoint and keys from the environment, the region inside -o.
    let env = [
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_ACCESS_KEY_ID", KEYS.0.to_string()),
        ("AWS_SECRET_ACCESS_KEY", KEYS.1.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = OsStr::new("s3://moto-bucket/study");
    let m = Mount::source(|_| {}).start_source(url, &["-o", "region=us-east-1"], &env);
    let vol = 16 * 16 * 8 * 2;
    for name in ["a.nii", "b.nii.gz", "c.hdr"] {
        for k in 0..5 {
            let got = cat(&m.path(format!("{name}.d/vol_{k:04}.nii")));
            assert_eq!(
                &got[352..],
                &data[k * vol..(k + 1) * vol],
                "{name} volume {k}"
            );
        }
    }
    let listed = proxy
        .seen()
        .into_iter()
        .filter(|s| !s.is_list() && s.method == "GET")
        .collect::<Vec<_>>();
    assert!(!listed.is_empty());
    for s in &listed {
        assert!(
            s.if_match.as_deref().is_some_and(|e| e.starts_with('"')),
            "GET without the listed ETag: {s:?}"
        );
        assert_eq!(s.status, 206, "{s:?}");
    }
}

#[test]
fn wrong_keys_a_missing_bucket_or_no_store_fail_mount_with_one_line() {
    let server = Server::s3s(true);
    server.create_bucket("private");
    put(
        &server.client("private"),
        "a/x.nii",
        &image4d(4, 5, 6, 2, 1).0,
    );
    let mnt = tempfile::tempdir().unwrap();
    let attempt = |url: &str, endpoint: &str, secret: &str| {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["mount", "--endpoint-url", endpoint, url])
            .arg(mnt.path())
            .env("AWS_ACCESS_KEY_ID", KEYS.0)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        run(&mut cmd, Duration::from_secs(60))
    };
    let one_line = |(ok, _, err): (bool, String, String), want: &str| {
        assert!(!ok, "mount should fail: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("nifuse: ") && err.contains(want), "{err}");
        assert!(!is_mounted(mnt.path()));
    };
    one_line(
        attempt("s3://private/a", &server.endpoint(), "wrong"),
        "refused access (HTTP 403",
    );
    one_line(
        attempt("s3://nosuch/a", &server.endpoint(), KEYS.1),
        "has no bucket",
    );
    one_line(
        attempt("s3://private/none", &server.endpoint(), KEYS.1),
        "no objects under this prefix",
    );
    let dead = format!("http://127.0.0.1:{}", s3::free_port());
    one_line(attempt("s3://private/a", &dead, KEYS.1), "cannot list it");
    // The right keys mount (in the background, as a user would).
    let (ok, _, err) = attempt("s3://private/a", &server.endpoint(), KEYS.1);
    let _unmount = Unmount(mnt.path());
    assert!(ok && is_mounted(mnt.path()), "{err}");
    assert_eq!(
        cat(&mnt.path().join("x.nii.d/vol_0001.nii")).len(),
        352 + 240
    );
}

/// Unmounts a background mount when dropped.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if is_mounted(self.0) {
            let (ok, _, err) = run(
                Command::new(BIN).arg("umount").arg(self.0),
                Duration::from_secs(10),
            );
            assert!(ok, "umount: {err}");
        }
    }
}
