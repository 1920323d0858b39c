//! Shared helpers of the mount tests: NIfTI files built byte by byte, and a
//! real FUSE mount of a temporary SOURCE that is torn down on drop.
//!
//! Mounts need root and /dev/fuse (CI has both); a test that cannot mount fails.
#![allow(dead_code)]

pub mod corefs;
pub mod json;
pub mod s3;
pub mod s3proxy;

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nifuse binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nifuse");

/// A little-endian NIfTI-1 single file (`n+1`) with `dims` (dim[0] = dims.len()),
/// the given datatype and bitpix, intent code, and voxel bytes at offset 352.
pub fn nifti1(dims: &[i16], datatype: i16, bitpix: i16, intent: i16, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in dims.len()..7 {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&1i16.to_le_bytes());
    }
    h[68..70].copy_from_slice(&intent.to_le_bytes());
    h[70..72].copy_from_slice(&datatype.to_le_bytes());
    h[72..74].copy_from_slice(&bitpix.to_le_bytes());
    for i in 0..8 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[112..116].copy_from_slice(&1f32.to_le_bytes());
    h[148..160].copy_from_slice(b"nifuse tests");
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend_from_slice(data);
    h
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An int16 4D image `nx*ny*nz*nt` with pseudo-random voxels: (file bytes, voxel bytes).
pub fn image4d(nx: i16, ny: i16, nz: i16, nt: i16, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let n = nx as usize * ny as usize * nz as usize * nt as usize * 2;
    let data = bytes(n, seed);
    (nifti1(&[nx, ny, nz, nt], 4, 16, 0, &data), data)
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Whether `mnt` is a mount point now (from /proc/self/mountinfo).
pub fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// Runs a command to completion with a time limit; returns (status ok, stdout, stderr).
/// Its output is drained while it runs, so a command printing more than a
/// pipe holds does not block.
pub fn run(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.success(),
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

/// A temporary SOURCE and MOUNTPOINT, and nifuse serving one at the other in
/// the foreground (`-f`), so the test knows the daemon's pid.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub src: PathBuf,
    pub mnt: PathBuf,
    pub child: Option<Child>,
}

impl Mount {
    /// A SOURCE filled by `fill`, not mounted yet.
    pub fn source(fill: impl FnOnce(&Path)) -> Mount {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&src).expect("mkdir src");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        fill(&src);
        Mount {
            dir,
            src,
            mnt,
            child: None,
        }
    }

    /// Mounts in the foreground with extra arguments; panics if it is not live within 10 s.
    pub fn start(self, args: &[&str]) -> Mount {
        let src = self.src.clone();
        self.start_source(src.as_os_str(), args, &[])
    }

    /// Mounts `source` (the temporary SOURCE, or an `s3://` URL) with extra
    /// arguments (an `--index-dir` among them replaces the temporary one) and
    /// environment (`AWS_*` variables of the test's own are not passed on).
    pub fn start_source(mut self, source: &OsStr, args: &[&str], env: &[(&str, &str)]) -> Mount {
        let index = self.dir.path().join("index");
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("log");
        let mut cmd = Command::new(BIN);
        cmd.arg("mount").arg("-f").arg("-v");
        if !args.contains(&"--index-dir") {
            cmd.arg("--index-dir").arg(&index);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .envs(env.iter().copied())
            .args(args)
            .arg(source)
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nifuse");
        self.child = Some(child);
        // Live means mounted and set up: the daemon logs "serving" after the
        // read-ahead is raised and the signal handlers are in place.
        let start = Instant::now();
        while !is_mounted(&self.mnt) || !self.log().contains("serving ") {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "nifuse exited with {status} before mounting: {}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not mounted after 10 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// Mounts with default options.
    #[allow(clippy::self_named_constructors)] // reads as `Mount::mount(fill)` in every test
    pub fn mount(fill: impl FnOnce(&Path)) -> Mount {
        Mount::source(fill).start(&[])
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mounted").id()
    }

    /// A path under the mount point.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Sends `sig` to the daemon and waits for it to exit; returns whether it exited cleanly.
    pub fn stop_with(&mut self, sig: i32) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: kill with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(child.id() as i32, sig) };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// getfattr -n NAME --only-values PATH
    pub fn getfattr(&self, rel: &str, name: &str) -> String {
        let (ok, out, err) = run(
            Command::new("getfattr")
                .args(["-n", name, "--only-values"])
                .arg(self.path(rel)),
            Duration::from_secs(10),
        );
        assert!(ok, "getfattr -n {name} {rel}: {err}");
        out
    }

    /// setfattr -n NAME -v VALUE PATH; returns (ok, stderr).
    pub fn setfattr(&self, rel: &str, name: &str, value: &str) -> (bool, String) {
        let (ok, _, err) = run(
            Command::new("setfattr")
                .args(["-n", name, "-v", value])
                .arg(self.path(rel)),
            Duration::from_secs(10),
        );
        (ok, err)
    }

    /// The contents of `.nifuse/stats`.
    pub fn stats(&self) -> String {
        std::fs::read_to_string(self.path(".nifuse/stats")).expect("stats")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_with(libc::SIGTERM);
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// `cat PATH` through the kernel, as bytes.
pub fn cat(path: &Path) -> Vec<u8> {
    let out = Command::new("cat").arg(path).output().expect("cat");
    assert!(
        out.status.success(),
        "cat {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The names in a directory, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits until `cond` holds, for at most `limit` (then fails naming `what`).
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `vol_K.nii` names in a `NAME.d` directory, sorted (the views and
/// subdirectories beside them left out).
pub fn volumes(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("vol_") && n.ends_with(".nii"))
        .collect()
}

/// The name of an OsStr for messages.
pub fn show(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Tests that write `/proc/sys/vm/drop_caches` make the kernel forget idle
/// inodes of every mount, which drops image caches that other tests of the
/// same binary are checking. Those hold this lock for reading, the writers
/// for writing.
pub static KERNEL_CACHES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Holds off tests that drop the kernel's caches while this guard lives.
pub fn caches_stable() -> std::sync::RwLockReadGuard<'static, ()> {
    KERNEL_CACHES.read().unwrap_or_else(|e| e.into_inner())
}

/// Waits for tests that check image caches, and keeps them waiting while this guard lives.
pub fn dropping_kernel_caches() -> std::sync::RwLockWriteGuard<'static, ()> {
    KERNEL_CACHES.write().unwrap_or_else(|e| e.into_inner())
}

/// setxattr(2) on `path` (no fallback through a program), as a user would with os.setxattr.
pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
