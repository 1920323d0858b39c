//! Tests of the lazy first pass and of verified reads: readers at several
//! positions of a never-indexed file, damage found after bytes were served,
//! strict mode, segment CRCs against a changed file, old index formats and
//! multi-member streams.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tests::{gzip, image_data, read_ok};
use super::*;

const VOL: usize = 200_000;
const NVOL: usize = 24;
const LONG: Duration = Duration::from_secs(60);

/// Where the volumes start (no header: the stream is all volumes).
fn starts(vol: usize, n: usize) -> Vec<u64> {
    (0..n).map(|k| (k * vol) as u64).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn source(p: &Path) -> Arc<dyn ByteSource> {
    Arc::new(LocalFile::open_followed(p).unwrap())
}

/// Stored (level 0) gzip of `data` with the byte at decoded offset `at`
/// flipped in the compressed file: it still inflates, only the CRC-32 tells.
fn crc_only_damage(data: &[u8], at: usize) -> Vec<u8> {
    let mut gz = gzip(data, 0);
    let needle = &data[at..at + 64];
    let pos = gz.windows(64).position(|w| w == needle).unwrap();
    gz[pos] ^= 0x40;
    gz
}

#[test]
fn a_read_inflates_only_to_its_volume_and_the_pass_goes_on_in_the_background() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, NVOL, 3);
    let p = write(d.path(), "bold.gz", &gzip(&data, 6));
    let st = starts(VOL, NVOL);
    // Without background continuation: the read stops the pass soon after volume 2.
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    let end = st[2] + VOL as u64;
    assert_eq!(read_ok(&a, st[2], VOL), &data[st[2] as usize..end as usize]);
    let inflated = a.inflated_bytes();
    assert!(
        inflated < end + 1_000_000,
        "inflated {inflated}, volume 2 ends at {end}"
    );
    assert!(
        matches!(a.state(), IndexState::Partial { .. }),
        "{:?}",
        a.state()
    );
    assert_eq!(a.pass_report().outcome, None);
    // Shared: the pass is continued to the end and every member verified.
    let a = GzAccess::shared(source(&p), st.clone(), None);
    assert_eq!(read_ok(&a, st[2], VOL), &data[st[2] as usize..end as usize]);
    let total = data.len() as u64;
    assert_eq!(a.wait_for_pass(LONG), Some(Outcome::Complete { total }));
    let r = a.pass_report();
    assert_eq!(
        (r.decoded, r.verified, r.members_verified),
        (total, total, 1)
    );
    assert_eq!(a.state(), IndexState::Complete { total_bytes: total });
}

#[test]
fn readers_at_several_positions_share_one_pass() {
    let d = tempfile::tempdir().unwrap();
    let data = Arc::new(image_data(VOL, NVOL, 4));
    let p = write(d.path(), "bold.gz", &gzip(&data, 6));
    let st = starts(VOL, NVOL);
    let a = GzAccess::shared(source(&p), st.clone(), None);
    let ks = [NVOL - 1, 0, NVOL / 2, 5, NVOL - 3];
    let hs: Vec<_> = ks
        .iter()
        .map(|&k| {
            let (a, data, s) = (a.clone(), data.clone(), st[k] as usize);
            std::thread::spawn(move || assert_eq!(read_ok(&a, s as u64, VOL), &data[s..s + VOL]))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    a.wait_for_pass(LONG).unwrap();
    // One pass over the stream plus each reader's own volume at most: no
    // reader inflated from the start on its own.
    let bound = data.len() as u64 + (ks.len() * (VOL + 300_000)) as u64;
    assert!(
        a.inflated_bytes() <= bound,
        "{} > {bound}",
        a.inflated_bytes()
    );
    for k in [3, NVOL - 2] {
        let s = st[k] as usize;
        assert_eq!(read_ok(&a, st[k], VOL), &data[s..s + VOL]);
    }
}

#[test]
fn a_crc_mismatch_found_after_a_volume_was_served_fails_later_reads() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, NVOL, 5);
    let p = write(
        d.path(),
        "bad.gz",
        &crc_only_damage(&data, (NVOL - 2) * VOL),
    );
    let st = starts(VOL, NVOL);
    // Not shared: no background continuation, so the pass ends when this
    // test drives it on (deterministically after volume 0 was served).
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    a.set_observer(Box::new(move |o| s2.lock().unwrap().push(o.clone())));
    assert_eq!(read_ok(&a, st[0], VOL), &data[..VOL]);
    assert_eq!(
        a.pass_report().outcome,
        None,
        "served before the CRC was known"
    );
    let e = a.build_all(&mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains(TRAILER_MISMATCH), "{e}");
    let Some(Outcome::Failed(f)) = a.pass_report().outcome else {
        panic!("{:?}", a.pass_report())
    };
    assert!(f.trailer_mismatch(), "{f:?}");
    assert_eq!(
        (f.limit, f.verified),
        (0, 0),
        "the whole member is condemned"
    );
    assert_eq!(seen.lock().unwrap().as_slice(), &[Outcome::Failed(f)]);
    for k in [0, 1, NVOL - 1] {
        let e = a.read_exact_at(st[k], &mut vec![0u8; VOL]).unwrap_err();
        assert!(e.to_string().contains(TRAILER_MISMATCH), "{e}");
    }
    // Shared: the background continuation finds it without any further read.
    let a = GzAccess::shared(source(&p), st.clone(), None);
    let mut buf = vec![0u8; VOL];
    let first = a.read_exact_at(st[0], &mut buf);
    assert!(
        first.is_err() || buf == data[..VOL],
        "right bytes or an error"
    );
    assert!(matches!(a.wait_for_pass(LONG), Some(Outcome::Failed(_))));
}

#[test]
fn strict_mode_serves_nothing_before_the_check() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, NVOL, 6);
    let good = write(d.path(), "good.gz", &gzip(&data, 6));
    let bad = write(
        d.path(),
        "bad.gz",
        &crc_only_damage(&data, (NVOL - 1) * VOL),
    );
    let st = starts(VOL, NVOL);
    let a = GzAccess::open(&good, st.clone(), None).unwrap();
    let mut buf = vec![0u8; VOL];
    a.read(st[0], &mut buf, Verify::Strict).unwrap();
    assert_eq!(buf, &data[st[0] as usize..st[0] as usize + VOL]);
    let total = data.len() as u64;
    assert_eq!(a.pass_report().outcome, Some(Outcome::Complete { total }));
    assert!(
        a.inflated_bytes() >= total,
        "the whole member was inflated first"
    );
    // Damage at the end: strict refuses volume 0, background serves it.
    let a = GzAccess::open(&bad, st.clone(), None).unwrap();
    let e = a.read(st[0], &mut buf, Verify::Strict).unwrap_err();
    assert!(e.to_string().contains(TRAILER_MISMATCH), "{e}");
    let b = GzAccess::open(&bad, st.clone(), None).unwrap();
    b.read(st[0], &mut buf, Verify::Background).unwrap();
    assert_eq!(buf, &data[st[0] as usize..st[0] as usize + VOL]);
}

#[test]
fn segment_crcs_catch_a_flipped_byte_decoded_from_a_saved_index() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("idx");
    let data = image_data(VOL, NVOL, 7);
    let p = write(d.path(), "img.gz", &gzip(&data, 0));
    let st = starts(VOL, NVOL);
    let a = GzAccess::open(&p, st.clone(), Some(&idx)).unwrap();
    a.build_all(&mut |_, _| {}).unwrap();
    a.save().unwrap();
    let saved = a.index_path().unwrap().to_path_buf();
    drop(a);
    // The same file (size, mtime, inode) with one byte of volume 9 changed.
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    let damaged = crc_only_damage(&data, st[9] as usize + 1000);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &damaged, 0).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let a = GzAccess::open(&p, st.clone(), Some(&idx)).unwrap();
    assert!(
        matches!(a.state(), IndexState::Complete { .. }),
        "the saved index loads"
    );
    let s = st[8] as usize;
    assert_eq!(
        read_ok(&a, st[8], VOL),
        &data[s..s + VOL],
        "volume 8 is intact"
    );
    let e = a.read_exact_at(st[9], &mut vec![0u8; VOL]).unwrap_err();
    assert!(matches!(e, GzError::Damaged(_)), "{e}");
    assert_eq!(a.state(), IndexState::None, "the index was discarded");
    assert!(!saved.exists(), "and its file removed");
    // The rebuilt pass is strict (the file is known to have changed): it
    // finds the member's CRC wrong, and nothing of it is served.
    let e = a.read_exact_at(st[9], &mut vec![0u8; VOL]).unwrap_err();
    assert!(e.to_string().contains(TRAILER_MISMATCH), "{e}");
}

#[test]
fn an_index_of_an_older_format_is_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("idx");
    let data = image_data(VOL, 6, 8);
    let p = write(d.path(), "img.gz", &gzip(&data, 6));
    let st = starts(VOL, 6);
    let a = GzAccess::open(&p, st.clone(), Some(&idx)).unwrap();
    a.build_all(&mut |_, _| {}).unwrap();
    a.save().unwrap();
    let f = a.index_path().unwrap().to_path_buf();
    drop(a);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&f, &bytes).unwrap();
    let a = GzAccess::open(&p, st.clone(), Some(&idx)).unwrap();
    assert_eq!(a.state(), IndexState::None, "a version 2 file is not read");
    assert_eq!(read_ok(&a, st[5], VOL), &data[st[5] as usize..]);
    a.build_all(&mut |_, _| {}).unwrap();
    a.save().unwrap();
    let v = u32::from_le_bytes(std::fs::read(&f).unwrap()[8..12].try_into().unwrap());
    assert_eq!(v, INDEX_FORMAT_VERSION);
    drop(a);
    let a = GzAccess::open(&p, st, Some(&idx)).unwrap();
    assert!(matches!(a.state(), IndexState::Complete { .. }));
}

#[test]
fn multi_member_files_are_verified_member_by_member() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, 12, 9);
    let parts: Vec<&[u8]> = data.chunks(3 * VOL + 17).collect();
    let members = |damaged: Option<usize>| {
        let mut gz = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            gz.extend(match damaged {
                Some(j) if j == i => crc_only_damage(part, part.len() / 2),
                _ => gzip(part, 6),
            });
        }
        gz
    };
    let st = starts(VOL, 12);
    let p = write(d.path(), "good.gz", &members(None));
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    a.build_all(&mut |_, _| {}).unwrap();
    let r = a.pass_report();
    assert_eq!(
        (r.members_verified, r.verified),
        (parts.len(), data.len() as u64)
    );
    // Damage in the third member: the first two stay verified and readable.
    let p = write(d.path(), "bad.gz", &members(Some(2)));
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    let e = a.build_all(&mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains(TRAILER_MISMATCH), "{e}");
    let r = a.pass_report();
    let two = (parts[0].len() + parts[1].len()) as u64;
    assert_eq!((r.members_verified, r.verified), (2, two));
    assert_eq!(read_ok(&a, 0, two as usize), &data[..two as usize]);
    assert!(a.read_exact_at(two - 1, &mut [0u8; 2]).is_err());
}
