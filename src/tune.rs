//! Kernel-side tuning: request sizes at FUSE init, and the mount's read-ahead.

use std::path::Path;

use fuser::KernelConfig;

/// Largest request the daemon lets the kernel send (it derives `max_pages`
/// from this): writes and read-ahead windows.
pub const MAX_REQUEST: u32 = 1 << 20;

/// Largest read request, set with the kernel's `max_read` mount option unless
/// `-o max_read=` says otherwise. Smaller than [`MAX_REQUEST`] on purpose: a
/// 1 MiB read-ahead window then goes out as four requests that the daemon's
/// threads serve at once while the reader copies the first ones out, instead
/// of one request the reader waits for whole. Measured with
/// `scripts/bench_throughput.py -o max_read=N` on the CI machine kind, first
/// reads: 1.60 GB/s at 128 KiB, 1.78 at 256 KiB, 1.53 at 512 KiB, 1.23 at 1 MiB.
pub const READ_REQUEST: u32 = 256 << 10;

/// The `max_read` mount option nifuse adds, unless the `-o` words given
/// already set one.
pub fn max_read_option<'a>(words: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let given = words.into_iter().any(|o| o.starts_with("max_read="));
    (!given).then(|| format!("max_read={READ_REQUEST}"))
}

/// Asks for large requests (the kernel derives `max_pages` from these), for
/// readdirplus (so `ls -l` gets attributes with the listing) and for kernel
/// handling of POSIX ACLs (so "no ACL" is cached per inode between listings).
pub fn kernel_config(config: &mut KernelConfig) {
    let plus = fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO;
    if let Err(missing) = config.add_capabilities(plus) {
        log::info!("kernel lacks {missing:?}; listings use plain readdir");
    }
    // With POSIX ACL support the kernel caches "no ACL" per inode, so
    // system.posix_acl_access (which `ls -l` asks of every file) reaches the
    // daemon once per inode until its entry is refreshed. A readdirplus
    // listing refreshes every entry, so `ls -l` of a whole directory still
    // asks each time (measured: two requests per file, with security.selinux).
    if let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_POSIX_ACL) {
        log::info!("kernel lacks {missing:?}; ACL lookups reach the daemon");
    }
    if let Err(max) = config.set_max_readahead(MAX_REQUEST) {
        let _ = config.set_max_readahead(max);
    }
    if let Err(max) = config.set_max_write(MAX_REQUEST) {
        let _ = config.set_max_write(max);
    }
}

/// Raises the read-ahead of the FUSE mount at `mountpoint` to `kb` KiB through
/// its BDI in sysfs (root only). Returns a line for the log.
/// The device is found in `/proc/self/mountinfo`, never by `stat` of the
/// mount point: the daemon must not make requests to its own mount.
pub fn raise_read_ahead(mountpoint: &Path, kb: u32) -> Result<String, String> {
    let dev = mount_device(mountpoint)
        .ok_or_else(|| format!("{} not found in /proc/self/mountinfo", mountpoint.display()))?;
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    std::fs::write(&path, format!("{kb}\n")).map_err(|e| format!("{path}: {e}"))?;
    Ok(format!(
        "read-ahead of {} raised to {kb} KiB ({path})",
        mountpoint.display()
    ))
}

/// The `major:minor` of the last mount at `mountpoint`, from `/proc/self/mountinfo`.
pub fn mount_device(mountpoint: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mountpoint.to_str()?;
    info.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let dev = fields.nth(2)?;
            let point = fields.nth(1)?;
            (unescape_mountinfo(point) == want).then(|| dev.to_string())
        })
        .next_back()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_read_is_added_unless_given() {
        let words = |raw: &[&str]| -> Vec<String> { raw.iter().map(|s| s.to_string()).collect() };
        let option = |raw: &[&str]| max_read_option(crate::mount::o_words(&words(raw)));
        assert_eq!(option(&["allow_other"]).as_deref(), Some("max_read=262144"));
        assert_eq!(option(&[]).as_deref(), Some("max_read=262144"));
        assert_eq!(option(&["noatime, max_read=65536"]), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert!(mount_device(Path::new("/")).is_some());
    }
}
