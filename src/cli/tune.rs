//! Kernel-side tuning of a mount: the largest read request, and the mount's
//! read-ahead (the request sizes asked at FUSE init are set in `fuse/session.rs`).

use std::path::Path;

/// Largest read request, set with the kernel's `max_read` mount option unless
/// `-o max_read=` says otherwise. Smaller than [`crate::fuse::MAX_REQUEST`] on purpose: a
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
        let option = |raw: &[&str]| max_read_option(crate::cli::mount::o_words(&words(raw)));
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
