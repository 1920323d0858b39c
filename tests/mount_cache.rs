//! Mount tests of the per-image caches, driven as a user would: setfattr,
//! getfattr, cat, the `.nifuse` control files and the kernel's drop_caches.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

fn two_images(src: &std::path::Path) {
    fs::write(src.join("a.nii"), image4d(8, 8, 8, 10, 11).0).unwrap();
    fs::write(src.join("b.nii.gz"), gzip(&image4d(8, 8, 8, 10, 12).0)).unwrap();
}

fn last_volume(m: &Mount, name: &str) -> Vec<u8> {
    cat(&m.path(format!("{name}.d/vol_0009.nii")))
}

/// Waits for the background fill of `name` (compressed images fill while
/// their readers decode their own volume).
fn wait_full(m: &Mount, name: &str) {
    let start = std::time::Instant::now();
    while m.getfattr(name, "user.in_memory") != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} never filled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn getfattr_dump_lists_every_attribute_on_name_and_dir() {
    let m = Mount::mount(two_images);
    for entry in ["a.nii", "a.nii.d", "b.nii.gz", "b.nii.gz.d"] {
        let (ok, out, err) = run(
            Command::new("getfattr").arg("-d").arg(m.path(entry)),
            Duration::from_secs(10),
        );
        assert!(ok, "{err}");
        for line in [
            "user.cache_mode=\"fill\"",
            "user.in_memory=\"0\"",
            "user.nifti.dtype=\"int16\"",
            "user.nifti.shape=\"8,8,8,10\"",
            "user.nifti.volumes=\"10\"",
            "user.uncache",
        ] {
            assert!(out.contains(line), "{entry}: {line} missing from\n{out}");
        }
    }
    // Plain files and volumes have no attributes; a missing name is ENODATA.
    let (ok, _, err) = run(
        Command::new("getfattr")
            .args(["-n", "user.cache_mode"])
            .arg(m.path("a.nii.d/vol_0000.nii")),
        Duration::from_secs(10),
    );
    assert!(!ok && err.contains("No such attribute"), "{err}");
}

#[test]
fn fill_unchanged_uncache_and_invalid_modes() {
    let _stable = caches_stable();
    let m = Mount::mount(two_images);
    for name in ["a.nii", "b.nii.gz"] {
        assert_eq!(m.getfattr(name, "user.in_memory"), "0");
        let first = last_volume(&m, name);
        wait_full(&m, name);
        assert_eq!(
            last_volume(&m, name),
            first,
            "{name} from memory, same bytes"
        );
        let (ok, _) = m.setfattr(&format!("{name}.d"), "user.uncache", "1");
        assert!(ok);
        assert_eq!(m.getfattr(name, "user.in_memory"), "0", "{name} uncached");
        let (ok, _) = m.setfattr(name, "user.cache_mode", "unchanged");
        assert!(ok);
        assert_eq!(
            m.getfattr(&format!("{name}.d"), "user.cache_mode"),
            "unchanged"
        );
        let other = cat(&m.path(format!("{name}.d/vol_0008.nii")));
        assert_eq!(other.len(), first.len());
        assert_eq!(
            m.getfattr(name, "user.in_memory"),
            "0",
            "{name}: unchanged never fills"
        );
        let (ok, err) = m.setfattr(name, "user.cache_mode", "sometimes");
        assert!(!ok && err.contains("Invalid argument"), "{err}");
        let (ok, _) = m.setfattr(name, "user.cache_mode", "fill");
        assert!(ok);
    }
    let stats = m.stats();
    assert!(stats.contains("\"path\": \"a.nii\""), "{stats}");
    assert!(stats.contains("\"cache_budget\": "), "{stats}");
    assert!(
        stats.contains("\"misses\": 1"),
        "the unchanged read was a miss: {stats}"
    );
}

#[test]
fn drop_caches_file_empties_every_cache() {
    let _stable = caches_stable();
    let m = Mount::mount(two_images);
    last_volume(&m, "a.nii");
    last_volume(&m, "b.nii.gz");
    wait_full(&m, "b.nii.gz");
    assert!(m.stats().contains("\"cached_images\": 2"), "{}", m.stats());
    fs::write(m.path(".nifuse/drop_caches"), b"1\n").unwrap();
    assert_eq!(m.getfattr("a.nii", "user.in_memory"), "0");
    assert_eq!(m.getfattr("b.nii.gz", "user.in_memory"), "0");
    assert!(m.stats().contains("\"cached_images\": 0"), "{}", m.stats());
    let e = fs::write(m.path(".nifuse/drop_caches"), b"7\n").expect_err("only 1 drops caches");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}

#[test]
fn kernel_forgetting_an_image_drops_its_cache_unless_open() {
    let _exclusive = dropping_kernel_caches();
    let m = Mount::mount(two_images);
    let open = fs::File::open(m.path("b.nii.gz.d/vol_0000.nii")).unwrap();
    last_volume(&m, "a.nii");
    last_volume(&m, "b.nii.gz");
    wait_full(&m, "b.nii.gz");
    assert!(m.stats().contains("\"cached_images\": 2"));
    // The kernel's FORGET messages reach the daemon asynchronously.
    let start = std::time::Instant::now();
    let stats = loop {
        fs::write("/proc/sys/vm/drop_caches", b"2\n").unwrap();
        let stats = m.stats();
        if stats.contains("\"cached_images\": 1") || start.elapsed() > Duration::from_secs(10) {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        stats.contains("\"cached_images\": 1"),
        "a.nii dropped, b.nii.gz kept (open): {stats}"
    );
    assert!(m.log().contains("the kernel forgot"), "{}", m.log());
    assert_eq!(m.getfattr("a.nii", "user.in_memory"), "0");
    assert_eq!(m.getfattr("b.nii.gz", "user.in_memory"), "1");
    drop(open);
}

#[test]
fn a_changed_source_is_served_from_the_new_file() {
    let _stable = caches_stable();
    let m = Mount::mount(two_images);
    let old = last_volume(&m, "a.nii");
    assert_eq!(m.getfattr("a.nii", "user.in_memory"), "1");
    let (new_img, new_data) = image4d(8, 8, 8, 10, 99);
    let tmp = m.src.join(".a.nii.tmp");
    fs::write(&tmp, &new_img).unwrap();
    fs::rename(&tmp, m.src.join("a.nii")).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // attribute TTL
    let new = last_volume(&m, "a.nii");
    assert_ne!(new, old);
    assert_eq!(&new[352..], &new_data[9 * 1024..]);
}

#[test]
fn daemon_memory_stays_within_the_cache_budget() {
    // Six 50 MiB images (300 MiB) under a 64 MiB budget, every volume read.
    let m = Mount::source(|src| {
        for i in 0..6 {
            fs::write(
                src.join(format!("img{i}.nii")),
                image4d(64, 64, 32, 200, i).0,
            )
            .unwrap();
        }
    })
    .start(&["--cache-size", "64M"]);
    let mut buf = Vec::new();
    for i in 0..6 {
        for k in 0..200 {
            buf.clear();
            let p = m.path(format!("img{i}.nii.d/vol_{k:04}.nii"));
            buf.extend(fs::read(p).unwrap());
            assert_eq!(buf.len(), 352 + 64 * 64 * 32 * 2);
        }
    }
    let status = fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let stats = m.stats();
    assert!(stats.contains("\"cache_budget\": 67108864"), "{stats}");
    eprintln!("daemon peak RSS: {} MiB (budget 64 MiB)", hwm_kb / 1024);
    assert!(
        hwm_kb < (64 + 32) * 1024,
        "peak RSS {hwm_kb} KiB exceeds 64 MiB + 32 MiB overhead"
    );
}

#[test]
fn a_source_that_changes_shape_shows_its_new_volumes() {
    let m = Mount::mount(two_images);
    assert_eq!(volumes(&m.path("a.nii.d")).len(), 10);
    let old = fs::metadata(m.path("a.nii.d/vol_0009.nii")).unwrap().len();
    last_volume(&m, "a.nii");
    // Replaced by a 4x4x4 image with 12 volumes.
    let (img, data) = image4d(4, 4, 4, 12, 5);
    fs::write(m.src.join(".tmp"), &img).unwrap();
    fs::rename(m.src.join(".tmp"), m.src.join("a.nii")).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // the mirror entry's TTL
    assert_eq!(m.getfattr("a.nii", "user.nifti.volumes"), "12");
    let vols = volumes(&m.path("a.nii.d"));
    assert_eq!(vols.len(), 12, "{vols:?}");
    let new = fs::metadata(m.path("a.nii.d/vol_0009.nii")).unwrap().len();
    assert_eq!((old, new), (352 + 1024, 352 + 128));
    let v = cat(&m.path("a.nii.d/vol_0011.nii"));
    assert_eq!(&v[352..], &data[11 * 128..]);
    let v = cat(&m.path("a.nii.d/vol_0009.nii"));
    assert_eq!(
        v.len(),
        352 + 128,
        "no stale pages or size from the old version"
    );
    assert_eq!(&v[352..], &data[9 * 128..10 * 128]);
}

/// `misses` of image `name` in `.nifuse/stats`: reads the daemon served from the source.
fn misses(m: &Mount, name: &str) -> f64 {
    json::parse_json(&m.stats())
        .image_row(name)
        .get("misses")
        .num()
}

/// Volume files keep their pages in the kernel's page cache across opens
/// (FOPEN_KEEP_CACHE, long attribute timeouts): reading a volume again, in new
/// opens, sends no read to the daemon.
#[test]
fn a_volume_read_again_in_new_opens_is_served_by_the_kernel_page_cache() {
    let _stable = caches_stable();
    let m = Mount::source(two_images).start(&["--cache-mode", "unchanged"]);
    let first = last_volume(&m, "a.nii");
    let served = misses(&m, "a.nii");
    assert!(served > 0.0, "the first read came from the daemon");
    for _ in 0..3 {
        assert_eq!(last_volume(&m, "a.nii"), first);
    }
    assert_eq!(
        misses(&m, "a.nii"),
        served,
        "re-reading reached the daemon: {}",
        m.stats()
    );
    // Another volume is not cached yet: it does reach the daemon.
    cat(&m.path("a.nii.d/vol_0003.nii"));
    assert!(misses(&m, "a.nii") > served);
}
