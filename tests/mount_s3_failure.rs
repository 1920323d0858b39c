//! Mount tests of an object store that fails while mounted (SPEC 6 and 7):
//! the server killed in the middle of a read, a store that stalls, 503
//! SlowDown throttling, and an object replaced while it is open, on s3s-fs
//! (which ignores If-Match: nifuse's check of each response's ETag catches
//! the change) and on moto (which answers 412). A read fails with EIO within
//! the retry bound and one log line naming the endpoint, the key and the
//! status; the mount keeps answering; reads work again once the store does.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::s3::{Server, mount_s3, put};
use common::s3proxy::Proxy;
use common::*;

/// How long a failing read may take: the retries give up after 10 s
/// (about 12 s for a store that stalls: the last attempt's 4 s of silence).
const BOUND: Duration = Duration::from_secs(30);

/// Runs `f` in a thread; its result, or None if it did not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The bytes of volume `k` of `data` (volumes of `vol` bytes).
fn volume(data: &[u8], vol: usize, k: usize) -> &[u8] {
    &data[k * vol..(k + 1) * vol]
}

/// The mount answers (stats, a listed directory) while the store does not.
fn mount_answers(m: &Mount) {
    let stats = m.path(".nifuse/stats");
    let ok = within(Duration::from_secs(5), move || {
        fs::read_to_string(stats).is_ok()
    });
    assert_eq!(
        ok,
        Some(true),
        "reading .nifuse/stats while the store is down"
    );
    let root = m.mnt.clone();
    let listed = within(Duration::from_secs(5), move || {
        fs::read_dir(root).map(|d| d.count()).ok()
    });
    assert!(
        listed.flatten().is_some_and(|n| n > 0),
        "listing the root while the store is down"
    );
}

/// The bytes of `path` once the store answers again: reads fail at once for
/// 2 s after a failed fetch (so the kernel's retries do not wait it out
/// again), then work.
fn recovers(path: &std::path::Path) -> Vec<u8> {
    let start = Instant::now();
    loop {
        match fs::read(path) {
            Ok(bytes) => return bytes,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!(
                "{}: still failing 10 s after the store answers: {e}",
                path.display()
            ),
        }
    }
}

/// A read that fails while the store is down: EIO, within [`BOUND`].
fn fails_with_eio(started: Instant, r: std::io::Result<Vec<u8>>) {
    let e = match r {
        Ok(bytes) => panic!("a read while the store is down gave {} bytes", bytes.len()),
        Err(e) => e,
    };
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(
        started.elapsed() < BOUND,
        "failed after {:?}",
        started.elapsed()
    );
}

/// A 4D int16 image of 2 MiB volumes on `server` as `bucket/key`: (file, voxels).
fn upload(server: &Server, bucket: &str, key: &str, nt: i16, seed: u64) -> (Vec<u8>, Vec<u8>) {
    server.create_bucket(bucket);
    let (img, data) = image4d(128, 128, 64, nt, seed);
    put(&server.client(bucket), key, &img);
    (img, data)
}

const VOL: usize = 128 * 128 * 64 * 2;

const ARGS: [&str; 5] = [
    "--no-sign-request",
    "--cache-mode",
    "unchanged",
    "--metadata-ttl",
    "600",
];

#[test]
fn the_server_killed_mid_read_fails_the_read_within_the_bound_and_reads_recover() {
    let mut server = Server::s3s(false);
    server.create_bucket("killed");
    let (img, data) = image4d(256, 256, 128, 2, 5); // 16 MiB volumes
    put(&server.client("killed"), "big.nii", &img);
    let proxy = Proxy::start(server.port);
    let m = mount_s3("s3://killed", &proxy.endpoint(), &ARGS);
    assert!(m.path("big.nii.d").is_dir());
    proxy.pace(20); // 64 KiB per 20 ms and connection
    let before = proxy.relayed();
    let path = m.path("big.nii.d/vol_0001.nii");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(fs::read(path)));
    wait_for(
        Duration::from_secs(20),
        "the volume's bytes flowing",
        || proxy.relayed() > before + (512 << 10),
    );
    proxy.down(true);
    server.kill();
    let killed = Instant::now();
    mount_answers(&m);
    let r = rx.recv_timeout(BOUND + Duration::from_secs(30));
    fails_with_eio(killed, r.expect("the reader returned"));
    let log = m.log();
    let key = format!("GET {} killed/big.nii bytes", proxy.endpoint());
    assert!(
        log.lines().any(|l| l.contains(&key)),
        "no log line naming {key}: {log}"
    );
    server.restart();
    proxy.down(false);
    proxy.pace(0);
    let vol = recovers(&m.path("big.nii.d/vol_0001.nii"));
    assert!(
        &vol[352..] == volume(&data, 256 * 256 * 128 * 2, 1),
        "volume 1 after the restart"
    );
}

/// `x.nii` (6 volumes) on s3s-fs behind a proxy, mounted and its header
/// read: (server, proxy, mount, voxels).
fn proxied_image(bucket: &str, seed: u64) -> (Server, Proxy, Mount, Vec<u8>) {
    let server = Server::s3s(false);
    let (_, data) = upload(&server, bucket, "x.nii", 6, seed);
    let proxy = Proxy::start(server.port);
    let m = mount_s3(&format!("s3://{bucket}"), &proxy.endpoint(), &ARGS);
    assert!(m.path("x.nii.d").is_dir());
    (server, proxy, m, data)
}

#[test]
fn a_store_that_stalls_never_hangs_the_mount_and_reads_recover() {
    let (_server, proxy, m, data) = proxied_image("stalled", 7);
    proxy.stall(true);
    let started = Instant::now();
    let path = m.path("x.nii.d/vol_0003.nii");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(fs::read(path)));
    mount_answers(&m);
    let r = rx
        .recv_timeout(BOUND + Duration::from_secs(30))
        .expect("the stalled read returned");
    fails_with_eio(started, r);
    proxy.stall(false);
    let vol = recovers(&m.path("x.nii.d/vol_0003.nii"));
    assert!(&vol[352..] == volume(&data, VOL, 3));
}

#[test]
fn throttling_is_retried_and_a_store_that_keeps_refusing_fails_with_one_line() {
    let (_server, proxy, m, data) = proxied_image("throttled", 8);
    proxy.clear();
    proxy.slow_down(3);
    let vol = fs::read(m.path("x.nii.d/vol_0001.nii")).expect("retried past three 503s");
    assert!(&vol[352..] == volume(&data, VOL, 1));
    let statuses: Vec<u16> = proxy
        .seen()
        .iter()
        .filter(|s| s.is_get_of("/x.nii"))
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [503, 503, 503, 206], "{:?}", proxy.seen());
    proxy.slow_down(u32::MAX);
    let started = Instant::now();
    fails_with_eio(started, fs::read(m.path("x.nii.d/vol_0004.nii")));
    let log = m.log();
    let line = format!("GET {} throttled/x.nii", proxy.endpoint());
    assert!(
        log.lines()
            .any(|l| l.contains(&line) && l.contains("HTTP 503 SlowDown")),
        "no log line with {line} and the status: {log}"
    );
    proxy.slow_down(0);
    let vol = recovers(&m.path("x.nii.d/vol_0004.nii"));
    assert!(&vol[352..] == volume(&data, VOL, 4));
}

/// Whether `got` (a whole volume file) is volume `k` of `old` or of `new`
/// (never a mix); the name of the version.
fn which(got: &[u8], old: &[u8], new: &[u8], k: usize) -> &'static str {
    match (
        &got[352..] == volume(old, VOL, k),
        &got[352..] == volume(new, VOL, k),
    ) {
        (true, _) => "old",
        (_, true) => "new",
        _ => panic!("volume {k} mixes versions (or is neither)"),
    }
}

/// An object replaced while its files are open: open files give old bytes
/// or EIO, never new ones; new opens get the new version.
fn replaced_while_open(server: &Server, args: &[&str]) {
    let (_, old) = upload(server, "rep", "scan.nii", 4, 11);
    let m = mount_s3("s3://rep", &server.endpoint(), args);
    // A volume open before the change: its bytes came in one GET, all old.
    let mut vol = fs::File::open(m.path("scan.nii.d/vol_0001.nii")).unwrap();
    let mut first = vec![0u8; 4096];
    vol.read_exact(&mut first).unwrap();
    // The object itself, open before the change, read at its start only.
    let whole = fs::File::open(m.path("scan.nii")).unwrap();
    let mut head = vec![0u8; 4096];
    whole.read_exact_at(&mut head, 0).unwrap();
    let (img_new, new) = image4d(128, 128, 64, 4, 12);
    put(&server.client("rep"), "scan.nii", &img_new);
    let mut rest = Vec::new();
    vol.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    assert_eq!(which(&first, &old, &new, 1), "old", "the open volume");
    let mut tail = vec![0u8; 1 << 20];
    let at = 352 + 3 * VOL as u64;
    match whole.read_exact_at(&mut tail, at) {
        Ok(()) => assert!(
            tail == volume(&old, VOL, 3)[..1 << 20],
            "the open object gave new bytes"
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
    }
    // New opens: wholly old until the change is seen, then wholly new.
    let mut seen = Vec::new();
    wait_for(
        Duration::from_secs(30),
        "the new version in a new open",
        || {
            let r = fs::read(m.path("scan.nii.d/vol_0002.nii"));
            match r {
                Ok(got) => seen.push(which(&got, &old, &new, 2)),
                Err(e) => assert!(
                    matches!(e.raw_os_error(), Some(libc::EIO | libc::ESTALE)),
                    "{e}"
                ),
            }
            seen.last() == Some(&"new")
        },
    );
    assert!(
        seen.iter()
            .skip_while(|v| **v == "old")
            .all(|v| *v == "new"),
        "{seen:?}"
    );
    let log = m.log();
    assert!(
        log.contains("changed on the store since it was first read"),
        "the change was noticed by a read: {log}"
    );
}

#[test]
fn an_object_replaced_while_open_never_mixes_versions_s3s_etag_check() {
    replaced_while_open(&Server::s3s(false), &ARGS);
}

#[test]
fn an_object_replaced_while_open_never_mixes_versions_moto_if_match() {
    let server = Server::moto();
    let args = ["--cache-mode", "unchanged", "--metadata-ttl", "600"];
    replaced_while_open(&server, &args);
}
