//! `nifuse mount` and `nifuse umount`: checks, daemonizing, the FUSE session, signals.
//!
//! Without `-f`, `mount` forks before any thread exists; the parent waits on a
//! pipe until the child reports "mounted" (exit 0) or an error (exit 1 with
//! the child's one-line reason). The child detaches, logs to a file, and
//! serves until unmounted; SIGINT, SIGTERM and SIGHUP unmount it cleanly.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::MountArgs;
use super::source::{
    S3_FLAG, S3_KEYS, Source, apply_o_setting, default_threads, open_store, s3_source,
};
use crate::fs::{Config, Fs};
use crate::fuse::{Access, MountSpec};

/// How long the kernel may cache names and attributes of the mount.
const TTL: Duration = Duration::from_secs(1);

/// The same for `NAME.d` and volume files (changes are pushed to the kernel).
const VOLUME_TTL: Duration = Duration::from_secs(10);

/// The words of `-o` options as given (`-o a,b -o c`): split at commas,
/// trimmed, empty ones dropped.
pub(crate) fn o_words(raw: &[String]) -> impl Iterator<Item = &str> {
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The kernel mount options among the `-o` words (nifuse's own settings
/// and fstab-only words are left out), as a [`MountSpec`] still without
/// its file system name and thread count.
fn parse_options(raw: &[String]) -> Result<MountSpec, String> {
    let mut opts = MountSpec::default();
    for opt in o_words(raw) {
        match opt {
            "allow_other" => opts.access = Access::All,
            "allow_root" => opts.access = Access::RootAndOwner,
            "ro" => {
                return Err(
                    "-o ro is not needed: nifuse never writes, and a kernel read-only \
                            mount would refuse setfattr user.cache_mode"
                        .into(),
                );
            }
            "rw"
            | S3_FLAG
            | "default_permissions"
            | "nodev"
            | "nosuid"
            | "dev"
            | "suid"
            | "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "users"
            | "nouser"
            | "_netdev"
            | "nofail" => {}
            o if o.starts_with("x-")
                || o.contains('=')
                    && NIFUSE_KEYS.iter().chain(&S3_KEYS).any(|k| o.starts_with(k)) => {}
            "noexec" => opts.noexec = true,
            "noatime" => opts.noatime = true,
            other => opts.custom.push(other.to_string()),
        }
    }
    Ok(opts)
}

/// nifuse's own settings accepted inside `-o` (as fstab passes them).
const NIFUSE_KEYS: [&str; 6] = [
    "verify=",
    "cache_mode=",
    "cache_size=",
    "index_dir=",
    "threads=",
    "log_file=",
];

/// Moves nifuse's own `-o key=value` settings into `args`.
fn apply_o_settings(args: &mut MountArgs) -> Result<(), String> {
    let opts: Vec<String> = o_words(&args.options).map(str::to_string).collect();
    for opt in opts {
        if opt == S3_FLAG {
            args.no_sign_request = true;
        }
        let Some((key, value)) = opt.split_once('=') else {
            continue;
        };
        match key {
            "cache_mode" => args.cache_mode = value.parse()?,
            "verify" => args.verify = value.parse()?,
            "cache_size" => args.cache_size = Some(crate::size::parse_size(value)?),
            "index_dir" => args.index_dir = Some(PathBuf::from(value)),
            "log_file" => args.log_file = Some(PathBuf::from(value)),
            "threads" => {
                args.threads = Some(
                    value
                        .parse()
                        .map_err(|_| format!("-o threads={value}: not a number"))?,
                )
            }
            _ => {
                apply_o_setting(args, key, value)?;
            }
        }
    }
    Ok(())
}

/// Everything `mount` checks before forking: SOURCE (an object store is
/// only parsed here; it is reached after the fork) and MOUNTPOINT.
fn check(args: &MountArgs) -> Result<(Source, PathBuf), String> {
    let source = match s3_source(args)? {
        Some(url) => Source::S3(url),
        None => Source::Local(check_local_source(args)?),
    };
    Ok((source, check_mountpoint(args)?))
}

/// SOURCE as a readable local directory, canonical.
fn check_local_source(args: &MountArgs) -> Result<PathBuf, String> {
    let source = std::fs::canonicalize(&args.source)
        .map_err(|e| format!("SOURCE {}: {e}", args.source.display()))?;
    if !source.is_dir() {
        return Err(format!(
            "SOURCE {} is not a directory",
            args.source.display()
        ));
    }
    std::fs::read_dir(&source)
        .map_err(|e| format!("SOURCE {} is not readable: {e}", source.display()))?;
    Ok(source)
}

/// MOUNTPOINT as an existing directory where nothing is mounted, canonical;
/// and FUSE usable.
fn check_mountpoint(args: &MountArgs) -> Result<PathBuf, String> {
    let mnt_meta = std::fs::metadata(&args.mountpoint).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTCONN) => format!(
            "MOUNTPOINT {} is a dead mount: run `nifuse umount {}` first",
            args.mountpoint.display(),
            args.mountpoint.display()
        ),
        _ => format!("MOUNTPOINT {}: {e}", args.mountpoint.display()),
    })?;
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| format!("MOUNTPOINT {}: {e}", args.mountpoint.display()))?;
    if !mnt_meta.is_dir() {
        return Err(format!(
            "MOUNTPOINT {} is not a directory",
            mountpoint.display()
        ));
    }
    if is_mount_point(&mountpoint) {
        return Err(format!(
            "MOUNTPOINT {} is busy: something is already mounted there (`nifuse umount {}`?)",
            mountpoint.display(),
            mountpoint.display()
        ));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(
            "FUSE is not available: /dev/fuse is missing (load it with `modprobe fuse`, \
                    or on a container give it --device /dev/fuse)"
                .into(),
        );
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && which("fusermount3").is_none() && which("fusermount").is_none() {
        return Err(
            "FUSE mounts by non-root users need fusermount3: install the `fuse3` package \
                    (Debian/Ubuntu: apt-get install fuse3)"
                .into(),
        );
    }
    Ok(mountpoint)
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return true;
    };
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

/// `nifuse mount`.
pub fn mount(mut args: MountArgs) -> Result<(), String> {
    apply_o_settings(&mut args)?;
    let (source, mountpoint) = check(&args)?;
    let options = parse_options(&args.options)?;
    if args.foreground {
        super::logging::init_stderr(args.verbose);
        return serve(&args, &source, &mountpoint, options, None);
    }
    let log_path = args
        .log_file
        .clone()
        .unwrap_or_else(|| super::logging::default_log_path(&mountpoint));
    let (read_end, write_end) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    // SAFETY: no thread exists yet (nothing above spawns one), so the child
    // starts with a consistent copy of the whole process.
    match unsafe { libc::fork() } {
        -1 => Err(format!("cannot fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(read_end);
            let mut report = File::from(write_end);
            let outcome = super::logging::init_file(&log_path, args.verbose)
                .and_then(|()| detach())
                .and_then(|()| serve(&args, &source, &mountpoint, options, Some(&mut report)));
            if let Err(e) = outcome {
                let _ = writeln!(report, "{e}");
                std::process::exit(1);
            }
            std::process::exit(0);
        }
        _child => {
            drop(write_end);
            let mut msg = String::new();
            let _ = std::io::BufReader::new(File::from(read_end)).read_line(&mut msg);
            match msg.lines().next() {
                Some("mounted") => {
                    eprintln!(
                        "nifuse: {} mounted at {} (log: {})",
                        source.describe(),
                        mountpoint.display(),
                        log_path.display()
                    );
                    Ok(())
                }
                Some(err) => Err(err.to_string()),
                None => Err(format!(
                    "the nifuse daemon exited before mounting; see {}",
                    log_path.display()
                )),
            }
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Leaves the terminal's session and points stdio at /dev/null.
fn detach() -> Result<(), String> {
    // SAFETY: setsid has no memory-safety preconditions; failure is harmless here.
    unsafe { libc::setsid() };
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: both descriptors are open; dup2 onto 0..2 replaces stdio.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(format!(
                "redirecting stdio: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Mounts and serves until unmounted. `report` gets "mounted" once the mount is live.
fn serve(
    args: &MountArgs,
    source: &Source,
    mountpoint: &Path,
    mut spec: MountSpec,
    report: Option<&mut File>,
) -> Result<(), String> {
    // Before the store's runtime and the request threads start.
    super::process::limit_malloc_arenas();
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let cache_size = args
        .cache_size
        .unwrap_or_else(|| crate::size::total_memory().map_or(1 << 30, |m| m / 4));
    if let Some(dir) = source.local()
        && mountpoint.starts_with(dir)
        && mountpoint != dir
    {
        log::info!("MOUNTPOINT is inside SOURCE; nifuse will not descend into it");
    }
    let (store, image_cache_size) = open_store(source, args, (uid, gid), cache_size)?;
    let config = Config {
        ttl: TTL,
        volume_ttl: VOLUME_TTL,
        recheck: Duration::from_millis(250),
        index_dir: Some(args.index_dir.clone().unwrap_or_else(default_index_dir)),
        cache_mode: args.cache_mode,
        verify: args.verify,
        cache_size: image_cache_size,
        uid,
        gid,
    };
    super::process::raise_open_file_limit();
    // Handlers first: a signal that arrives while mounting is kept and acted
    // on once the mount is up, instead of killing the daemon mid-way.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let fs = std::sync::Arc::new(Fs::with_store(store, config));
    let threads = args
        .threads
        .unwrap_or_else(|| default_threads(source))
        .max(1);
    spec.fsname = source.describe();
    spec.threads = threads;
    if let Some(max_read) = super::tune::max_read_option(o_words(&args.options)) {
        spec.custom.push(max_read);
    }
    let mut session = crate::fuse::mount(fs.clone(), mountpoint, &spec)
        .map_err(|e| format!("cannot mount at {}: {e}", mountpoint.display()))?;
    drop(fs);
    log::info!(
        "mounted {} at {} ({threads} threads, cache {} per mount, mode {}, verify {})",
        source.describe(),
        mountpoint.display(),
        crate::size::human(cache_size),
        args.cache_mode.as_str(),
        args.verify.as_str()
    );
    if !args.no_read_ahead {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            match super::tune::raise_read_ahead(mountpoint, 1024) {
                Ok(line) => log::info!("{line}"),
                Err(e) => log::info!("read-ahead left as it is: {e}"),
            }
        }
    }
    let mut unmounter = session.unmounter();
    let mp = mountpoint.to_path_buf();
    std::thread::Builder::new()
        .name("nifuse-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: unmounting {}", mp.display());
                if let Err(e) = unmounter.unmount() {
                    log::error!("unmounting {} failed: {e}", mp.display());
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    if let Some(report) = report {
        let _ = writeln!(report, "mounted");
    }
    // The last word of the set-up (the read-ahead is raised, the signals
    // are watched): from here on requests are served.
    log::info!("serving {}", mountpoint.display());
    session
        .run()
        .map_err(|e| format!("serving {}: {e}", mountpoint.display()))?;
    // Index saves that readers handed off are written before the daemon exits.
    crate::source::gzindex::wait_for_saves();
    log::info!("unmounted {}", mountpoint.display());
    Ok(())
}

/// `$XDG_CACHE_HOME/nifuse`, else `~/.cache/nifuse`.
pub fn default_index_dir() -> PathBuf {
    super::logging::cache_home().join("nifuse")
}

/// `nifuse umount`: unmounts, also a mount whose daemon died.
pub fn umount(mountpoint: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| "mount point path contains a NUL byte".to_string())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM) => {
            let tool = which("fusermount3")
                .or_else(|| which("fusermount"))
                .ok_or_else(|| {
                    format!(
                        "{}: only root can unmount without fusermount3 (install fuse3)",
                        mountpoint.display()
                    )
                })?;
            let status = std::process::Command::new(&tool)
                .arg("-u")
                .arg(mountpoint)
                .status()
                .map_err(|e| format!("{}: {e}", tool.display()))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{} -u {} failed",
                    tool.display(),
                    mountpoint.display()
                ))
            }
        }
        Some(libc::EBUSY) => Err(format!(
            "{} is busy: a process still has files open there or its cwd in it (see `fuser -m {}`)",
            mountpoint.display(),
            mountpoint.display()
        )),
        Some(libc::EINVAL) => Err(format!("{} is not a mount point", mountpoint.display())),
        _ => Err(format!("cannot unmount {}: {err}", mountpoint.display())),
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
