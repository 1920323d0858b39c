//! Mount tests of the command line: background mounts, errors, signals, umount.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

fn cmd(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    run(Command::new(BIN).args(args), Duration::from_secs(30))
}

#[test]
fn background_mount_is_live_when_it_returns_and_umount_clears_it() {
    let m = Mount::source(|src| {
        fs::write(src.join("scan.nii"), image4d(2, 2, 2, 3, 5).0).unwrap();
    });
    let log = m.dir.path().join("bg.log");
    let (ok, _, err) = cmd(&[
        "mount".as_ref(),
        "--log-file".as_ref(),
        log.as_os_str(),
        m.src.as_os_str(),
        m.mnt.as_os_str(),
    ]);
    assert!(ok, "mount failed: {err}");
    // No waiting: the mount must already be live.
    assert!(is_mounted(&m.mnt));
    assert_eq!(volumes(&m.path("scan.nii.d")).len(), 3);
    assert!(err.contains("mounted at"), "{err}");
    let (ok, _, err) = cmd(&["umount".as_ref(), m.mnt.as_os_str()]);
    assert!(ok, "umount: {err}");
    assert!(!is_mounted(&m.mnt));
}

#[test]
fn mount_errors_are_one_line_and_nonzero() {
    let m = Mount::source(|_| {});
    let missing = m.dir.path().join("nope");
    let file = m.dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    for (source, mnt, expect) in [
        (missing.as_os_str(), m.mnt.as_os_str(), "SOURCE"),
        (file.as_os_str(), m.mnt.as_os_str(), "not a directory"),
        (m.src.as_os_str(), missing.as_os_str(), "MOUNTPOINT"),
    ] {
        let (ok, _, err) = cmd(&["mount".as_ref(), source, mnt]);
        assert!(!ok, "mount {source:?} {mnt:?} should fail");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expect), "{err}");
    }
    let (ok, _, err) = cmd(&[
        "mount".as_ref(),
        "--cache-mode".as_ref(),
        "sometimes".as_ref(),
        m.src.as_os_str(),
        m.mnt.as_os_str(),
    ]);
    assert!(!ok && err.contains("fill or unchanged"), "{err}");
    let (ok, _, err) = cmd(&[
        "mount".as_ref(),
        "-o".as_ref(),
        "ro".as_ref(),
        m.src.as_os_str(),
        m.mnt.as_os_str(),
    ]);
    assert!(!ok && err.contains("ro"), "{err}");
    assert!(!is_mounted(&m.mnt));
}

#[test]
fn an_already_mounted_point_is_busy() {
    let m = Mount::mount(|_| {});
    let (ok, _, err) = cmd(&["mount".as_ref(), m.src.as_os_str(), m.mnt.as_os_str()]);
    assert!(!ok);
    assert!(err.contains("busy"), "{err}");
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut m = Mount::mount(|src| fs::write(src.join("a.txt"), b"a").unwrap());
        assert!(
            m.stop_with(sig),
            "daemon exit status after signal {sig}: {}",
            m.log()
        );
        assert!(!is_mounted(&m.mnt), "still mounted after signal {sig}");
    }
}

#[test]
fn after_sigkill_umount_clears_the_dead_mount_and_it_mounts_again() {
    let mut m = Mount::mount(|src| fs::write(src.join("a.txt"), b"a").unwrap());
    assert!(!m.stop_with(libc::SIGKILL));
    assert!(is_mounted(&m.mnt), "a killed daemon leaves its mount");
    let e = fs::read_dir(&m.mnt).expect_err("dead mount");
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
    let (ok, _, err) = cmd(&["mount".as_ref(), m.src.as_os_str(), m.mnt.as_os_str()]);
    assert!(
        !ok && err.contains("nifuse umount"),
        "a dead mount says what to do: {err}"
    );
    let (ok, _, err) = cmd(&["umount".as_ref(), m.mnt.as_os_str()]);
    assert!(ok, "umount of a dead mount: {err}");
    assert!(!is_mounted(&m.mnt));
    let m = m.start(&[]);
    assert_eq!(
        names(&m.mnt),
        [".nifuse", "a.txt"],
        "mounted again on the same point"
    );
}

#[test]
fn help_and_version() {
    let (ok, out, _) = cmd(&["--version".as_ref()]);
    assert!(ok && out.starts_with("nifuse "), "{out}");
    let (ok, out, _) = cmd(&["mount".as_ref(), "--help".as_ref()]);
    assert!(
        ok && out.contains("--cache-size") && out.contains("--index-dir"),
        "{out}"
    );
}

#[test]
fn mount_helper_for_fstab_takes_nifuse_settings_in_o() {
    let m = Mount::source(|src| {
        fs::write(src.join("scan.nii"), image4d(2, 2, 2, 3, 5).0).unwrap();
    });
    let helper = m.dir.path().join("mount.nifuse");
    std::os::unix::fs::symlink(BIN, &helper).unwrap();
    let log = m.dir.path().join("helper.log");
    let opts = format!(
        "rw,defaults,nofail,cache_mode=unchanged,cache_size=16M,log_file={}",
        log.display()
    );
    // What mount(8) runs for: /data /mnt nifuse rw,... 0 0
    let (ok, _, err) = run(
        Command::new(&helper)
            .arg(&m.src)
            .arg(&m.mnt)
            .args(["-n", "-o", &opts]),
        Duration::from_secs(30),
    );
    assert!(ok, "{err}");
    assert!(is_mounted(&m.mnt));
    assert_eq!(m.getfattr("scan.nii", "user.cache_mode"), "unchanged");
    assert!(
        m.stats().contains("\"cache_budget\": 16777216"),
        "{}",
        m.stats()
    );
    let (ok, _, err) = cmd(&["umount".as_ref(), m.mnt.as_os_str()]);
    assert!(ok, "{err}");
    assert!(log.exists(), "log_file= honoured");
}

#[test]
fn completions_and_man_page() {
    let (ok, out, _) = cmd(&["completions".as_ref(), "bash".as_ref()]);
    assert!(
        ok && out.contains("_nifuse") && out.contains("--cache-mode"),
        "{out}"
    );
    let (ok, out, _) = cmd(&["manpage".as_ref()]);
    assert!(
        ok && out.contains(".TH nifuse") && out.contains("mount"),
        "{out}"
    );
}

#[test]
fn a_user_without_fusermount3_is_told_which_package_to_install() {
    use std::os::unix::fs::PermissionsExt;
    let m = Mount::source(|_| {});
    for p in [m.dir.path(), &m.src, &m.mnt] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // As nobody, with no fusermount3 on PATH.
    let (ok, _, err) = run(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "env",
                "PATH=/nonexistent",
            ])
            .arg(BIN)
            .arg("mount")
            .arg(&m.src)
            .arg(&m.mnt),
        Duration::from_secs(30),
    );
    assert!(!ok, "mount as nobody without fusermount3 must fail");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("fusermount3") && err.contains("fuse3"),
        "{err}"
    );
    assert!(!is_mounted(&m.mnt));
}

/// The mount at `mnt` in /proc/self/mountinfo: its device (major:minor) and
/// its super options.
fn mountinfo(mnt: &std::path::Path) -> (String, String) {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = mnt.to_str().unwrap();
    let line = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want))
        .unwrap_or_else(|| panic!("{want} not in mountinfo:\n{info}"));
    let fields: Vec<&str> = line.split(' ').collect();
    (fields[2].to_string(), fields.last().unwrap().to_string())
}

fn read_ahead_kb(dev: &str) -> String {
    fs::read_to_string(format!("/sys/class/bdi/{dev}/read_ahead_kb"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn reads_are_asked_in_256k_requests_and_read_ahead_is_raised_unless_turned_off() {
    let (image, data) = image4d(64, 64, 40, 3, 11);
    let fill = |src: &std::path::Path| fs::write(src.join("scan.nii"), &image).unwrap();
    let vol = 64 * 64 * 40 * 2;
    let check = |m: &Mount| {
        // 320 KiB volumes: more than one request each, bytes still right.
        for k in 0..3 {
            let got = cat(&m.path(format!("scan.nii.d/vol_000{k}.nii")));
            assert_eq!(&got[352..], &data[k * vol..(k + 1) * vol], "vol {k}");
        }
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;

    let m = Mount::source(fill).start(&[]);
    let (dev, opts) = mountinfo(&m.mnt);
    assert!(
        opts.split(',').any(|o| o == "max_read=262144"),
        "default max_read missing: {opts}"
    );
    if root {
        assert_eq!(read_ahead_kb(&dev), "1024", "{}", m.log());
        assert!(m.log().contains("read-ahead of"), "{}", m.log());
    }
    check(&m);
    drop(m);

    let m = Mount::source(fill).start(&["-o", "max_read=65536", "--no-read-ahead"]);
    let (dev, opts) = mountinfo(&m.mnt);
    let max_reads: Vec<&str> = opts
        .split(',')
        .filter(|o| o.starts_with("max_read="))
        .collect();
    assert_eq!(max_reads, ["max_read=65536"], "{opts}");
    assert_ne!(read_ahead_kb(&dev), "1024", "--no-read-ahead ignored");
    assert!(!m.log().contains("read-ahead of"), "{}", m.log());
    check(&m);
}

/// Threads of the daemon serving FUSE requests (fuser names them `fuser-N`),
/// once they are all up: they start just after the mount appears.
fn request_threads(m: &Mount, expected: usize) -> usize {
    let count = || {
        fs::read_dir(format!("/proc/{}/task", m.pid()))
            .unwrap()
            .filter(|t| {
                fs::read_to_string(t.as_ref().unwrap().path().join("comm"))
                    .is_ok_and(|c| c.starts_with("fuser-"))
            })
            .count()
    };
    let start = std::time::Instant::now();
    while count() < expected && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    count()
}

#[test]
fn threads_sets_how_many_threads_serve_requests_default_one_per_core() {
    let fill = |src: &std::path::Path| {
        fs::write(src.join("scan.nii"), image4d(2, 2, 2, 3, 5).0).unwrap();
    };
    for n in [1, 3] {
        let m = Mount::source(fill).start(&["--threads", &n.to_string()]);
        assert_eq!(request_threads(&m, n), n, "--threads {n}");
        assert_eq!(volumes(&m.path("scan.nii.d")).len(), 3);
    }
    let cores = std::thread::available_parallelism().unwrap().get();
    let m = Mount::source(fill).start(&["-o", "threads=2"]);
    assert_eq!(request_threads(&m, 2), 2, "-o threads=2");
    drop(m);
    let m = Mount::source(fill).start(&[]);
    assert_eq!(request_threads(&m, cores), cores, "default: one per core");
}
