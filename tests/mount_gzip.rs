//! Mount tests of compressed sources: the persistent gzip index, `nifuse index`,
//! multi-member streams, corrupt data, and both verify modes (with `cat` and
//! nibabel).

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::*;

const VOL: usize = 32 * 32 * 16 * 2;

fn index_files(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn index_command_prebuilds_an_index_the_mount_uses() {
    let m = Mount::source(|src| {
        fs::write(src.join("bold.nii.gz"), gzip(&image4d(32, 32, 16, 12, 7).0)).unwrap();
        fs::write(src.join("plain.nii"), image4d(2, 2, 2, 2, 7).0).unwrap();
    });
    let index = m.dir.path().join("index");
    let (ok, _, err) = run(
        Command::new(BIN)
            .arg("index")
            .arg("--index-dir")
            .arg(&index)
            .arg(m.src.join("bold.nii.gz"))
            .arg(m.src.join("plain.nii")),
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("1 indexed") && err.contains("1 skipped"),
        "summary line: {err}"
    );
    assert_eq!(index_files(&index).len(), 1, "{:?}", index_files(&index));
    let m = m.start(&["--cache-mode", "unchanged"]);
    let (_, data) = image4d(32, 32, 16, 12, 7);
    let v = cat(&m.path("bold.nii.gz.d/vol_0005.nii"));
    assert_eq!(&v[352..], &data[5 * VOL..6 * VOL]);
    assert!(
        m.stats().contains("\"index\": \"complete\""),
        "saved index loaded: {}",
        m.stats()
    );
}

#[test]
fn first_access_verifies_and_indexes_and_the_index_is_kept_across_mounts() {
    let mut m = Mount::source(|src| {
        fs::write(src.join("bold.nii.gz"), gzip(&image4d(32, 32, 16, 12, 8).0)).unwrap();
    })
    .start(&["--cache-mode", "unchanged"]);
    let (_, data) = image4d(32, 32, 16, 12, 8);
    assert_eq!(volumes(&m.path("bold.nii.gz.d")).len(), 12);
    assert!(
        m.stats().contains("\"index\": \"none\""),
        "no index before any read: {}",
        m.stats()
    );
    let v = cat(&m.path("bold.nii.gz.d/vol_0003.nii"));
    assert_eq!(&v[352..], &data[3 * VOL..4 * VOL]);
    // The pass goes on in the background to the end of the stream.
    wait_for(Duration::from_secs(10), "the first pass completes", || {
        m.stats().contains("\"index\": \"complete\"")
    });
    for k in (0..12).rev() {
        let v = cat(&m.path(format!("bold.nii.gz.d/vol_{k:04}.nii")));
        assert_eq!(&v[352..], &data[k * VOL..(k + 1) * VOL], "vol {k}");
    }
    assert!(m.stop_with(libc::SIGTERM));
    let index = m.dir.path().join("index");
    let files = index_files(&index);
    assert_eq!(files.len(), 1, "saved at unmount: {files:?}");
    let saved = fs::metadata(index.join(&files[0]))
        .unwrap()
        .modified()
        .unwrap();
    let mut m = m.start(&["--cache-mode", "unchanged"]);
    assert_eq!(volumes(&m.path("bold.nii.gz.d")).len(), 12);
    assert!(
        m.stats().contains("\"index\": \"complete\""),
        "the saved index shows in stats before any read: {}",
        m.stats()
    );
    let v = cat(&m.path("bold.nii.gz.d/vol_0007.nii"));
    assert_eq!(&v[352..], &data[7 * VOL..8 * VOL]);
    assert!(
        m.stats().contains("\"index\": \"complete\""),
        "{}",
        m.stats()
    );
    assert!(m.stop_with(libc::SIGTERM));
    let again = fs::metadata(index.join(&files[0]))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        saved, again,
        "the saved index was loaded, not rebuilt and rewritten"
    );
}

#[test]
fn multi_member_gzip_and_gzip_detected_by_magic() {
    let (img, data) = image4d(32, 32, 16, 6, 9);
    let m = Mount::mount(|src| {
        let mut two = gzip(&img[..352 + 2 * VOL + 100]);
        two.extend(gzip(&img[352 + 2 * VOL + 100..]));
        fs::write(src.join("multi.nii.gz"), two).unwrap();
        fs::write(src.join("named_plain.nii"), gzip(&img)).unwrap();
        fs::write(src.join("not_gzip.nii.gz"), &img).unwrap();
    });
    for name in ["multi.nii.gz", "named_plain.nii", "not_gzip.nii.gz"] {
        for k in 0..6 {
            let v = cat(&m.path(format!("{name}.d/vol_{k:04}.nii")));
            assert_eq!(&v[352..], &data[k * VOL..(k + 1) * VOL], "{name} vol {k}");
        }
    }
}

/// A realistic int16 4D image: a smooth pattern plus a little noise (deflate
/// codes it with Huffman blocks, where damage soon breaks the stream).
fn smooth_image(nt: usize) -> (Vec<u8>, Vec<u8>) {
    let noise = bytes(VOL / 2 * nt, 11);
    let mut data = Vec::with_capacity(VOL * nt);
    for (i, n) in noise.iter().enumerate() {
        let (x, y, z, t) = (i % 32, (i / 32) % 32, (i / 1024) % 16, i / (VOL / 2));
        let v = (x * 7 + y * 5 + z * 3 + t) as i16 * 10 + i16::from(*n % 4);
        data.extend_from_slice(&v.to_le_bytes());
    }
    (nifti1(&[32, 32, 16, nt as i16], 4, 16, 0, &data), data)
}

fn corrupt_mount(gz: Vec<u8>) -> Mount {
    Mount::source(move |src| fs::write(src.join("bad.nii.gz"), gz).unwrap())
        .start(&["--cache-mode", "unchanged"])
}

/// Reads every volume: each is either exactly right or EIO. Returns which were EIO.
fn read_all(m: &Mount, data: &[u8], n: usize) -> Vec<usize> {
    let mut eio = Vec::new();
    for k in 0..n {
        match fs::read(m.path(format!("bad.nii.gz.d/vol_{k:04}.nii"))) {
            Ok(v) => assert_eq!(
                &v[352..],
                &data[k * VOL..(k + 1) * VOL],
                "vol {k} served must be right"
            ),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "vol {k}: {e}");
                eio.push(k);
            }
        }
    }
    eio
}

#[test]
fn corrupt_compressed_data_gives_eio_for_affected_volumes_only() {
    // A multi-member stream (as bgzip writes): 10 members of 4 volumes each,
    // the 8th damaged. What decodes from intact members is served; nothing
    // wrong ever is.
    let (img, data) = smooth_image(40);
    let mut gz = gzip(&img[..352 + 4 * VOL]);
    let mut damaged_at = 0;
    for m in 1..10 {
        let member = gzip(&img[352 + 4 * m * VOL..(352 + 4 * (m + 1) * VOL).min(img.len())]);
        if m == 7 {
            damaged_at = gz.len() + member.len() / 2;
        }
        gz.extend(member);
    }
    gz[damaged_at..damaged_at + 16].fill(0xff);
    let m = corrupt_mount(gz);
    let eio = read_all(&m, &data, 40);
    assert!(!eio.is_empty(), "the damaged member fails");
    assert!(
        eio[0] >= 16 && eio[0] <= 28,
        "volumes of intact members before it keep working: EIO {eio:?}"
    );
    assert!(
        m.log().contains("bad.nii.gz") && m.log().contains("corrupt"),
        "{}",
        m.log()
    );
}

/// Stored (level 0) gzip of `img` with one byte flipped in volume `k`'s
/// data: damage that still inflates, caught only by the member's CRC-32.
fn crc_only_damage(img: &[u8], k: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut e, img).unwrap();
    let mut gz = e.finish().unwrap();
    let needle = &img[352 + k * VOL + 1000..352 + k * VOL + 1064];
    let at = gz.windows(64).position(|w| w == needle).unwrap();
    gz[at] ^= 0x01;
    gz
}

/// Waits (deadline 30 s) until the stats show the first pass of `bad.nii.gz`
/// in `state`; returns the stats.
fn wait_pass(m: &Mount, state: &str) -> String {
    let want = format!("\"pass\": {{\"state\": \"{state}\"");
    let start = std::time::Instant::now();
    loop {
        let stats = m.stats();
        if stats.contains(&want) {
            return stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "pass never {state}: {stats}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python of the venv scripts/setup-deps makes (nibabel), or NIFUSE_VENV's.
fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("NIFUSE_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} missing: run scripts/setup-deps",
        py.display()
    );
    py
}

/// nibabel's `dataobj` of volume file `vol`, as little-endian int16 bytes, or its error.
fn nibabel_volume(vol: &std::path::Path) -> Result<Vec<u8>, String> {
    let code = "import sys, numpy as np, nibabel as nib\n\
                a = np.asarray(nib.load(sys.argv[1]).dataobj)\n\
                sys.stdout.buffer.write(a.astype('<i2').tobytes(order='F'))";
    let out = Command::new(python())
        .args(["-c", code])
        .arg(vol)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn strict_mode_serves_nothing_of_a_member_before_its_crc_is_checked() {
    let (img, data) = image4d(32, 32, 16, 40, 10);
    let m = Mount::source(|src| {
        fs::write(src.join("bad.nii.gz"), crc_only_damage(&img, 30)).unwrap();
        fs::write(src.join("good.nii.gz"), gzip(&img)).unwrap();
    })
    .start(&["--cache-mode", "unchanged", "--verify", "strict"]);
    assert_eq!(read_all(&m, &data, 40), (0..40).collect::<Vec<_>>());
    assert!(m.log().contains("trailer mismatch"), "{}", m.log());
    let v = nibabel_volume(&m.path("good.nii.gz.d/vol_0002.nii")).unwrap();
    assert_eq!(v, &data[2 * VOL..3 * VOL]);
    assert!(nibabel_volume(&m.path("bad.nii.gz.d/vol_0001.nii")).is_err());
    assert!(m.stats().contains("\"state\": \"failed\""), "{}", m.stats());
}

#[test]
fn a_crc_mismatch_found_after_a_volume_was_served_fails_it_from_then_on() {
    // Background mode (the default): volume 0 is served as soon as the pass
    // has decoded it (the pass then needs far longer to reach the member's
    // end, though a very fast one may get there before the first read is
    // answered: then that read is EIO too). Once the CRC is found wrong, every
    // read of the member gives EIO, also of what the kernel had cached, and
    // one log line says what had been served.
    let (img, data) = image4d(32, 32, 16, 240, 11);
    let m = Mount::source(|src| {
        fs::write(src.join("bad.nii.gz"), crc_only_damage(&img, 238)).unwrap();
    })
    .start(&["--cache-mode", "unchanged", "-o", "verify=background"]);
    let first = m.path("bad.nii.gz.d/vol_0000.nii");
    let served = match fs::read(&first) {
        Ok(v) => {
            assert_eq!(&v[352..], &data[..VOL], "served before the CRC was known");
            true
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            false
        }
    };
    let stats = wait_pass(&m, "failed");
    assert!(stats.contains("\"state\": \"failed\"}]"), "{stats}");
    // The kernel is told to drop its cached pages from the invalidation
    // thread: wait (deadline 10 s) until a read of volume 0 reaches the daemon.
    let start = std::time::Instant::now();
    loop {
        match fs::read(&first) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            other => assert!(
                start.elapsed() < Duration::from_secs(10),
                "volume 0 still served from the kernel's cache: {:?}",
                other.map(|v| v.len())
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(nibabel_volume(&m.path("bad.nii.gz.d/vol_0002.nii")).is_err());
    let log = m.log();
    assert!(log.contains("trailer mismatch"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("served before the damage was known"));
    match (served, line) {
        (true, Some(l)) => assert!(l.contains("bad.nii.gz") && l.contains("(volume 0)"), "{l}"),
        (true, None) => panic!("no line about what was served: {log}"),
        (false, _) => {}
    }
    assert_eq!(read_all(&m, &data, 240), (0..240).collect::<Vec<_>>());
}

#[test]
fn a_lazy_first_read_and_the_background_pass_in_stats() {
    let (img, data) = image4d(32, 32, 16, 120, 12);
    let m = Mount::source(|src| fs::write(src.join("bad.nii.gz"), gzip(&img)).unwrap())
        .start(&["--cache-mode", "unchanged"]);
    let v = nibabel_volume(&m.path("bad.nii.gz.d/vol_0007.nii")).unwrap();
    assert_eq!(v, &data[7 * VOL..8 * VOL]);
    let stats = wait_pass(&m, "complete");
    assert!(stats.contains("\"state\": \"verified\"}]"), "{stats}");
    assert!(stats.contains("\"index\": \"complete\""), "{stats}");
    assert!(read_all(&m, &data, 120).is_empty());
}
