//! Hostile input: a corpus of malformed images, generated here byte by byte,
//! mounted all at once. For every entry: the listing works; either it has no
//! `.d` (and, for a regular file, reads back byte-identical through the mount)
//! or every volume nifuse offers reads exactly the right bytes (checked against
//! the source bytes) or fails with EIO/ENOENT. Every operation is bounded in
//! time (a hang is a failure), the daemon never exits, and a good image still
//! reads at the end. A second test checks that every bad file is logged once.
//!
//! The daemon runs under RLIMIT_AS (see `guard_memory`) so that a runaway
//! allocation aborts nifuse instead of waking the machine's OOM killer; an
//! abort is reported as the daemon exiting, which is a failure either way.

mod common;
mod corpus;

use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use corpus::*;

/// How long any single filesystem operation may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(10);

/// Volumes larger than this are probed with small preads instead of read whole.
const WHOLE_READ_MAX: u128 = 16 << 20;

/// Runs `f` on another thread; `None` if it did not finish within `LIMIT`.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).ok()
}

/// Limits the daemon's address space, so that a runaway allocation makes it
/// abort (a test failure) rather than exhaust the shared machine's memory.
fn guard_memory(pid: u32) {
    let lim = libc::rlimit {
        rlim_cur: 3 << 30,
        rlim_max: 3 << 30,
    };
    // SAFETY: prlimit on a child we own, with a valid rlimit.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_AS, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// What happened to the corpus: failures, and operations that hung.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    hangs: usize,
}

impl Report {
    fn fail(&mut self, name: &str, msg: impl AsRef<str>) {
        self.failures.push(format!("{name}: {}", msg.as_ref()));
    }
    /// Runs a bounded operation, recording a hang.
    fn op<T: Send + 'static>(
        &mut self,
        name: &str,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let r = bounded(f);
        if r.is_none() {
            self.hangs += 1;
            self.fail(name, format!("{what}: no answer within {LIMIT:?} (hang)"));
        }
        r
    }
}

fn errno_ok(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENOENT))
}

/// Checks one volume `k` of `model` at `path`, reporting into `r`.
fn check_volume(
    r: &mut Report,
    name: &str,
    path: PathBuf,
    model: &Model,
    k: u128,
    must_read: bool,
) {
    let label = format!("{}/{}", name, path.file_name().unwrap().to_string_lossy());
    let p = path.clone();
    let Some(meta) = r.op(&label, "stat", move || fs::metadata(&p)) else {
        return;
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if errno_ok(&e) && !must_read => return,
        Err(e) => return r.fail(&label, format!("stat: {e}")),
    };
    let size = meta.len() as u128;
    let hdr_min: u128 = if model.nifti2 { 544 } else { 352 };
    if size < hdr_min + model.vol_bytes {
        return r.fail(
            &label,
            format!(
                "stat size {size} < header {hdr_min} + volume {}",
                model.vol_bytes
            ),
        );
    }
    let hdr_len = size - model.vol_bytes;
    if !hdr_len.is_multiple_of(16) || hdr_len > (64 << 20) + 1024 {
        return r.fail(
            &label,
            format!("volume header length {hdr_len} (size {size}) is not sane"),
        );
    }
    let start = model.voxoff + k * model.vol_bytes;
    if model.vol_bytes <= WHOLE_READ_MAX {
        let p = path.clone();
        let Some(res) = r.op(&label, "read", move || fs::read(&p)) else {
            return;
        };
        match res {
            Ok(v) => {
                if v.len() as u128 != size {
                    return r.fail(&label, format!("read {} bytes, stat says {size}", v.len()));
                }
                check_vol_header(r, &label, &v, model.nifti2);
                match model.bytes(start, model.vol_bytes) {
                    Some(want) if &v[hdr_len as usize..] == want => {}
                    Some(_) => r.fail(&label, "WRONG voxel bytes served"),
                    None => r.fail(&label, format!(
                        "served {} voxel bytes at stream offset {start} that the source does not have (only {} bytes)",
                        model.vol_bytes, model.decoded.len()
                    )),
                }
            }
            Err(e) if errno_ok(&e) => {
                if must_read || (model.exact && model.bytes(start, model.vol_bytes).is_some()) {
                    r.fail(
                        &label,
                        format!("all its bytes are present, yet reading it failed: {e}"),
                    );
                }
            }
            Err(e) => r.fail(&label, format!("read failed with {e}, not EIO/ENOENT")),
        }
        return;
    }
    // A huge volume: the header, then small preads at the start and end of the data.
    for (off, len) in [
        (0u128, hdr_len.min(4096)),
        (hdr_len, 4096),
        (size - 4096, 4096),
    ] {
        let p = path.clone();
        let Some(res) = r.op(&label, "pread", move || {
            let f = fs::File::open(&p)?;
            let mut buf = vec![0u8; len as usize];
            let n = f.read_at(&mut buf, off as u64)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>(buf)
        }) else {
            return;
        };
        match res {
            Ok(buf) if off == 0 => check_vol_header(r, &label, &buf, model.nifti2),
            Ok(buf) => {
                let from = start + (off - hdr_len);
                match model.bytes(from, len) {
                    Some(want) if buf == want => {}
                    Some(_) => r.fail(&label, format!("WRONG bytes at volume offset {off}")),
                    None => r.fail(&label, format!(
                        "pread at {off} served {} bytes the source does not have (stream offset {from}, source {} bytes)",
                        buf.len(), model.decoded.len()
                    )),
                }
            }
            // Even the header may fail: the kernel reads whole pages (and reads
            // ahead), and SPEC 6 lets a volume with missing bytes fail as a whole.
            Err(e) if errno_ok(&e) => {}
            Err(e) => r.fail(
                &label,
                format!("pread at {off} failed with {e}, not EIO/ENOENT"),
            ),
        }
    }
}

fn check_vol_header(r: &mut Report, label: &str, v: &[u8], nifti2: bool) {
    let ok = if nifti2 {
        v.len() >= 544
            && &v[4..8] == b"n+2\0"
            && i64::from_le_bytes(v[16..24].try_into().unwrap()) == 3
    } else {
        v.len() >= 352 && &v[344..348] == b"n+1\0" && i16::from_le_bytes([v[40], v[41]]) == 3
    };
    if !ok {
        r.fail(
            label,
            "volume header is not a 3D single-file header of the source's format",
        );
    }
}

/// Checks one corpus entry.
fn check_case(r: &mut Report, m: &Mount, listing: &[String], c: &Case) {
    let name = c.name.as_str();
    let file_name = Path::new(name)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    if !listing.contains(&file_name) {
        return r.fail(name, "not listed");
    }
    let has_d = listing.contains(&format!("{file_name}.d"));
    let src = m.src.join(name);
    let mnt = m.path(name);
    let smeta = fs::symlink_metadata(&src).unwrap();
    let p = mnt.clone();
    let Some(mmeta) = r.op(name, "lstat", move || fs::symlink_metadata(&p)) else {
        return;
    };
    let mmeta = match mmeta {
        Ok(mm) => mm,
        Err(e) => return r.fail(name, format!("lstat through the mount: {e}")),
    };
    if mmeta.file_type() != smeta.file_type() {
        r.fail(
            name,
            format!(
                "type {:?} in the mount, {:?} in SOURCE",
                mmeta.file_type(),
                smeta.file_type()
            ),
        );
    }
    if smeta.file_type().is_symlink() {
        let p = mnt.clone();
        match r.op(name, "readlink", move || fs::read_link(&p)) {
            Some(Ok(t)) if t == fs::read_link(&src).unwrap() => {}
            Some(other) => r.fail(name, format!("readlink gave {other:?}")),
            None => {}
        }
    }
    let model = match &c.expect {
        Expect::Split(model) => {
            if !has_d {
                return r.fail(name, "a valid image has no .d");
            }
            Some((model, true))
        }
        Expect::Either(model) if has_d => Some((model, false)),
        Expect::Special | Expect::Plain | Expect::Either(_) => {
            if has_d {
                return r.fail(name, "has a .d but must not");
            }
            None
        }
    };
    let Some((model, must)) = model else {
        // No .d: a regular file reads back byte for byte.
        if smeta.file_type().is_file() {
            let want = fs::read(&src).unwrap();
            let p = mnt.clone();
            match r.op(name, "read", move || fs::read(&p)) {
                Some(Ok(got)) if got == want => {}
                Some(Ok(got)) => r.fail(
                    name,
                    format!(
                        "reads back {} bytes, differing from the source's {}",
                        got.len(),
                        want.len()
                    ),
                ),
                Some(Err(e)) => r.fail(name, format!("reading the plain file failed: {e}")),
                None => {}
            }
        }
        return;
    };
    // A .d: list a bounded number of its names (never the whole directory),
    // then read those, the last volume and a few more.
    let dir = m.path(format!("{name}.d"));
    let d = dir.clone();
    let Some(first) = r.op(name, "listing the .d", move || {
        fs::read_dir(&d).map(|it| {
            it.take(16)
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
    }) else {
        return;
    };
    let first = match first {
        Ok(f) => f,
        Err(e) => return r.fail(name, format!("listing the .d: {e}")),
    };
    let width = model.width();
    let mut ks: Vec<u128> = Vec::new();
    // Besides the volumes: the slice and float directories and the whole image.
    let file = Path::new(name)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let lower = file.to_ascii_lowercase();
    let stem = [".nii.gz", ".hdr.gz", ".nii", ".hdr"]
        .iter()
        .find(|e| lower.ends_with(*e))
        .map_or(file, |e| &file[..file.len() - e.len()]);
    let whole = format!("{stem}.nii");
    let views = ["x", "y", "z", "float32", "float64", whole.as_str()];
    for n in first.iter().filter(|n| !views.contains(&n.as_str())) {
        let digits = n.strip_prefix("vol_").and_then(|s| s.strip_suffix(".nii"));
        match digits.and_then(|d| d.parse::<u128>().ok().filter(|_| d.len() == width)) {
            Some(k) if k < model.n_vols => ks.push(k),
            _ => r.fail(
                name,
                format!(
                    "unexpected name {n:?} in the .d (volumes: {}, width {width})",
                    model.n_vols
                ),
            ),
        }
    }
    if first.is_empty() {
        r.fail(name, "empty .d");
    }
    let n = model.n_vols;
    ks.extend([n - 1, n / 2, n.saturating_sub(2), (n / 3).min(99)]);
    ks.sort_unstable();
    ks.dedup();
    for k in ks {
        let vol = dir.join(format!("vol_{k:0width$}.nii"));
        let must_read = must && k < n;
        check_volume(r, name, vol, model, k, must_read);
        if r.hangs >= 2 {
            return;
        }
    }
}

fn mount_corpus(bombs: bool) -> (Mount, Vec<Case>) {
    let mut cases = Vec::new();
    let m = Mount::source(|src| cases = build_corpus(src, bombs)).start(&[]);
    guard_memory(m.pid());
    (m, cases)
}

/// The names at the mount's root, or an empty list (and a failure) if listing hangs or fails.
fn list_root(r: &mut Report, m: &Mount) -> Vec<String> {
    let root = m.mnt.clone();
    let res = r.op("/", "listing the mount root", move || {
        fs::read_dir(&root).and_then(|it| {
            it.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    match res {
        Some(Ok(mut l)) => {
            l.sort();
            l
        }
        Some(Err(e)) => {
            r.fail("/", format!("listing the mount root: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn daemon_alive(m: &mut Mount) -> bool {
    matches!(m.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
}

/// Mounts the corpus and checks every entry; returns the problems found.
fn run_corpus(bombs: bool) {
    let (mut m, mut cases) = mount_corpus(bombs);
    cases.sort_by_key(|c| c.dangerous);
    let mut r = Report::default();
    let listing = list_root(&mut r, &m);
    let mut died_at = None;
    if !listing.is_empty() {
        for c in &cases {
            if r.hangs >= 2 {
                r.fail(&c.name, "skipped: the daemon stopped answering earlier");
                continue;
            }
            check_case(&mut r, &m, &listing, c);
            if died_at.is_none() && !daemon_alive(&mut m) {
                died_at = Some(c.name.clone());
                r.fail(&c.name, "THE DAEMON EXITED while this entry was checked");
            }
        }
    }
    // Still serving: a good image reads right at the end.
    let (img, _) = image4d(NX, NX, NX, NT, 40);
    let p = m.path("v01_good.nii.d/vol_0005.nii");
    match bounded(move || fs::read(&p)) {
        Some(Ok(v)) if v[352..] == img[352 + 5 * VOL..] => {}
        other => r.fail(
            "final read",
            format!(
                "v01_good.nii.d/vol_0005.nii after the corpus: {:?}",
                other.map(|x| x.map(|v| v.len()))
            ),
        ),
    }
    if !daemon_alive(&mut m) {
        r.fail(
            "daemon",
            format!("exited (first noticed after {died_at:?})"),
        );
    }
    let mut tail = m.log();
    if tail.len() > 6000 {
        tail = tail[tail.len() - 6000..].to_string();
    }
    assert!(
        r.failures.is_empty(),
        "{} problems with the malformed corpus:\n  {}\n--- daemon log (tail) ---\n{tail}",
        r.failures.len(),
        r.failures.join("\n  ")
    );
}

/// The whole corpus in one mount, resource bombs included (checked last).
#[test]
fn malformed_corpus_every_read_is_right_or_eio_and_the_daemon_survives() {
    run_corpus(true);
}

/// The same without the four resource bombs (huge volume counts, huge
/// compressed volumes), which have tests of their own below: so that one
/// daemon-killing input does not hide what the rest of the corpus does.
#[test]
fn malformed_corpus_without_resource_bombs() {
    run_corpus(false);
}

/// Lists and stats the corpus three times, then returns the daemon log and
/// the final root listing.
fn log_after_listing(m: &mut Mount, cases: &[Case]) -> (String, Vec<String>) {
    for _ in 0..3 {
        let root = m.mnt.clone();
        let listed = bounded(move || names(&root)).expect("listing the mount hung");
        assert!(listed.len() >= cases.len(), "{listed:?}");
        for c in cases {
            let p = m.path(&c.name);
            let _ = bounded(move || fs::symlink_metadata(&p));
            let p = m.path(format!("{}.d", c.name));
            let _ = bounded(move || fs::symlink_metadata(&p));
        }
        std::thread::sleep(Duration::from_millis(1100)); // past the attribute TTL and the registry's recheck
    }
    assert!(daemon_alive(m), "daemon exited: {}", m.log());
    (m.log(), names(&m.mnt))
}

/// Asserts that each `logged` case chosen by `pick` and not shown as an image
/// has exactly one log line (naming its file) saying why.
fn assert_logged_once(log: &str, listing: &[String], cases: &[Case], pick: impl Fn(&Case) -> bool) {
    let mut problems = Vec::new();
    for c in cases.iter().filter(|c| c.logged && pick(c)) {
        let stem = c.name.split('.').next().unwrap();
        let fname = Path::new(&c.name)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if listing.contains(&format!("{fname}.d")) {
            continue; // shown as an image: its read errors are checked elsewhere
        }
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(stem)).collect();
        match lines.len() {
            0 => problems.push(format!("{}: no .d, yet no log line says why", c.name)),
            1 => {}
            n => problems.push(format!(
                "{}: logged {n} times, not once:\n      {}",
                c.name,
                lines.join("\n      ")
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "{} logging problems:\n  {}\n--- daemon log ---\n{log}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// SPEC 2: a file that cannot be parsed as an image is shown as a plain file
/// and logged once with the reason.
#[test]
fn every_bad_image_file_is_logged_once_with_its_name() {
    // Without the resource bombs: listing a directory holding one hangs today
    // (see the tests below), which would hide every logging result.
    let (mut m, cases) = mount_corpus(false);
    let (log, listing) = log_after_listing(&mut m, &cases);
    assert_logged_once(&log, &listing, &cases, |c| {
        !matches!(c.expect, Expect::Special)
    });
}

/// NIfTI-named entries that are not served as images although their name says
/// so (a FIFO, symlink loops, dangling symlinks, symlinks out of SOURCE): a
/// user sees `x.nii` without `x.nii.d`, so one log line must say why.
#[test]
fn nifti_named_fifos_and_unfollowed_symlinks_are_logged_once() {
    let (mut m, cases) = mount_corpus(false);
    let (log, listing) = log_after_listing(&mut m, &cases);
    let fifo = fs::symlink_metadata(m.path("s01_fifo.nii")).unwrap();
    assert!(fifo.file_type().is_fifo(), "a FIFO stays a FIFO");
    assert_eq!(
        fs::symlink_metadata(m.path("s02_dir.nii")).unwrap().mode() & 0o170000,
        0o040000
    );
    assert_logged_once(&log, &listing, &cases, |c| {
        matches!(c.expect, Expect::Special)
    });
}

#[test]
fn a_directory_of_quintillions_of_volumes_does_not_hang_or_kill_the_daemon() {
    // dim = [7, 1, 1, 1, 32767, 32767, 32767, 32767], uint8: 1.15e18 one-byte
    // volumes, 100 of them present. Listing its .d (the first page only) must
    // answer promptly, and the daemon must keep serving.
    let mut m = Mount::mount(|src| {
        let many = nifti1(
            &[1, 1, 1, i16::MAX, i16::MAX, i16::MAX, i16::MAX],
            2,
            8,
            0,
            &bytes(100, 45),
        );
        fs::write(src.join("many.nii"), many).unwrap();
        fs::write(src.join("good.nii"), image4d(NX, NX, NX, NT, 40).0).unwrap();
    });
    guard_memory(m.pid());
    let root = m.mnt.clone();
    let listing = bounded(move || names(&root));
    assert!(
        listing.is_some(),
        "listing the directory that holds many.nii did not answer within {LIMIT:?}; daemon alive: {}\n{}",
        daemon_alive(&mut m),
        m.log()
    );
    if listing.unwrap().contains(&"many.nii.d".to_string()) {
        let d = m.path("many.nii.d");
        let first =
            bounded(move || fs::read_dir(&d).map(|it| it.take(3).filter_map(|e| e.ok()).count()));
        assert!(
            matches!(first, Some(Ok(3))),
            "opening many.nii.d for listing did not answer within {LIMIT:?} ({first:?}); daemon alive: {}",
            daemon_alive(&mut m)
        );
        let v = m.path("many.nii.d/vol_0000000000000000099.nii");
        let got = bounded(move || fs::read(&v))
            .expect("reading volume 99 hung")
            .expect("volume 99 is present");
        assert_eq!(got[got.len() - 1], bytes(100, 45)[99]);
    }
    let p = m.path("good.nii.d/vol_0000.nii");
    let good = bounded(move || fs::read(&p));
    assert!(
        matches!(good, Some(Ok(_))),
        "a good image no longer reads: {good:?}"
    );
    assert!(daemon_alive(&mut m), "daemon exited: {}", m.log());
}

#[test]
fn reading_a_huge_volume_of_a_compressed_image_gives_eio_not_a_crash() {
    // A 1.3 kB .nii.gz whose header claims one 70 TB volume (and a NIfTI-2 one
    // of 2^60 bytes): reading must fail with EIO (the bytes are not there),
    // never abort the daemon by allocating the whole volume.
    let mut m = Mount::mount(|src| {
        fs::write(
            src.join("huge3d.nii.gz"),
            gzip(&nifti1(&[i16::MAX; 3], 4, 16, 0, &bytes(1000, 42))),
        )
        .unwrap();
        fs::write(
            src.join("n2huge.nii.gz"),
            gzip(&nifti2(&[1 << 60, 1, 1], 2, 8, 544, &bytes(1000, 43))),
        )
        .unwrap();
        fs::write(src.join("good.nii"), image4d(NX, NX, NX, NT, 40).0).unwrap();
    });
    guard_memory(m.pid());
    let mut problems = Vec::new();
    for name in ["huge3d.nii.gz", "n2huge.nii.gz"] {
        let root = m.mnt.clone();
        if !bounded(move || names(&root))
            .expect("listing hung")
            .contains(&format!("{name}.d"))
        {
            continue;
        }
        let p = m.path(format!("{name}.d/vol_0000.nii"));
        let res = bounded(move || {
            let f = fs::File::open(&p)?;
            let mut buf = vec![0u8; 4096];
            f.read_at(&mut buf, 1024)
        });
        match res {
            Some(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {}
            other => problems.push(format!(
                "{name}: pread of vol_0000 at 1024: {other:?} (want EIO)"
            )),
        }
        if !daemon_alive(&mut m) {
            problems.push(format!("{name}: the daemon exited reading it"));
            break;
        }
    }
    let p = m.path("good.nii.d/vol_0000.nii");
    if !matches!(bounded(move || fs::read(&p)), Some(Ok(_))) {
        problems.push("good.nii no longer reads".into());
    }
    let mut tail = m.log();
    if tail.len() > 3000 {
        tail = tail[tail.len() - 3000..].to_string();
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\n--- daemon log (tail) ---\n{tail}"
    );
}
