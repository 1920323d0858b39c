//! Process-wide settings of the daemon, made once before its threads start:
//! the open-file limit and the number of malloc arenas.

/// Raises the soft limit on open files to the hard limit: each image in use
/// holds its source file open (and a gzip index its own descriptor).
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur >= lim.rlim_max
    {
        return;
    }
    let wanted = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: wanted is a valid rlimit; raising the soft limit to the hard one is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        log::info!(
            "open-file limit raised from {} to {}",
            lim.rlim_cur,
            lim.rlim_max
        );
    }
}

/// Malloc arenas the daemon's threads share (glibc's default is 8 per core).
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`]: each thread that
/// allocates (request threads, gzip passes, fills, index saves) would
/// otherwise get an arena of its own, and freed buffers left spread over
/// them kept the daemon's RSS 13 MiB above what it uses under
/// `tests/mount_load.rs` (62 MiB peak against 49 MiB with two arenas).
/// Requests reuse their buffers, so the arenas' locks are rarely contended.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tunables; called before the
        // daemon starts its threads.
        if unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) } == 0 {
            log::debug!("malloc arenas left as they are (mallopt refused M_ARENA_MAX)");
        }
    }
}
