//! Mount tests of compressed sources: the persistent gzip index, `nifuse index`,
//! multi-member streams and corrupt data.

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
    // The first access makes one CRC-checked pass, which completes the index.
    assert!(
        m.stats().contains("\"index\": \"complete\""),
        "{}",
        m.stats()
    );
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

#[test]
fn a_checksum_mismatch_fails_its_whole_member() {
    // Damage that still inflates (inside stored blocks of random data) is only
    // caught by the CRC-32 at the member's end: no volume of it is served.
    let (img, data) = image4d(32, 32, 16, 12, 10);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut e, &img).unwrap();
    let mut gz = e.finish().unwrap();
    let mid = gz.len() / 2;
    gz[mid] ^= 0x01;
    let m = corrupt_mount(gz);
    assert_eq!(read_all(&m, &data, 12), (0..12).collect::<Vec<_>>());
    assert!(m.log().contains("trailer mismatch"), "{}", m.log());
}
