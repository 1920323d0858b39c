//! Tests of the persistent index: round trip, stale/truncated/corrupt/forged files.

use std::path::{Path, PathBuf};

use super::tests::{gzip, image_data, read_ok, starts};
use super::*;

const VOL: usize = 96 * 96 * 64 * 2;
const NVOL: usize = 6;

fn fixture(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u64>) {
    let mut data = vec![0u8; 352];
    data.extend(image_data(VOL, NVOL, 17));
    let p = dir.join("img.nii.gz");
    std::fs::write(&p, gzip(&data, 6)).unwrap();
    (p, data, starts(VOL, NVOL))
}

/// Build and save a complete index; returns the index file path.
fn build(p: &Path, st: &[u64], idx: &Path) -> PathBuf {
    let a = GzAccess::open(p, st.to_vec(), Some(idx)).unwrap();
    a.build_all(&mut |_, _| {}).unwrap();
    a.save().unwrap();
    a.index_path().unwrap().to_path_buf()
}

fn assert_rebuilt(p: &Path, data: &[u8], st: &[u64], idx: &Path) {
    let a = GzAccess::open(p, st.to_vec(), Some(idx)).unwrap();
    assert_eq!(a.state(), IndexState::None, "bad index must be ignored");
    let k = NVOL - 1;
    assert_eq!(
        read_ok(&a, st[k], VOL),
        &data[st[k] as usize..st[k] as usize + VOL]
    );
    assert!(
        a.inflated_bytes() >= st[k],
        "must have inflated from the start"
    );
    a.build_all(&mut |_, _| {}).unwrap();
    a.save().unwrap();
    drop(a);
    let b = GzAccess::open(p, st.to_vec(), Some(idx)).unwrap();
    assert!(
        matches!(b.state(), IndexState::Complete { .. }),
        "rewritten index must load"
    );
}

#[test]
fn round_trip_reads_without_inflating_from_start() {
    let d = tempfile::tempdir().unwrap();
    let idx = d.path().join("cache/nested");
    let (p, data, st) = fixture(d.path());
    let f = build(&p, &st, &idx);
    let size = std::fs::metadata(&f).unwrap().len();
    assert!(
        (size as f64) < 0.03 * data.len() as f64,
        "index {size} bytes for {}",
        data.len()
    );
    // only the final file is left in the directory (no temp files)
    assert_eq!(std::fs::read_dir(&idx).unwrap().count(), 1);
    let a = GzAccess::open(&p, st.clone(), Some(&idx)).unwrap();
    assert_eq!(
        a.state(),
        IndexState::Complete {
            total_bytes: data.len() as u64
        }
    );
    for k in [NVOL - 1, 2] {
        let before = a.inflated_bytes();
        assert_eq!(
            read_ok(&a, st[k], VOL),
            &data[st[k] as usize..st[k] as usize + VOL]
        );
        let cost = a.inflated_bytes() - before;
        assert!(cost < VOL as u64 + 200_000, "volume {k} cost {cost}");
    }
    // nothing new: save is a no-op and leaves the file as it was
    let m1 = std::fs::metadata(&f).unwrap().modified().unwrap();
    a.save().unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), m1);
}

#[test]
fn a_reader_that_ends_the_pass_hands_the_save_off_and_it_is_written() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let src = Arc::new(crate::source::local::LocalFile::open_followed(&p).unwrap());
    let a = GzAccess::shared(src, st.clone(), Some(d.path()));
    let k = NVOL - 1;
    let at = st[k] as usize;
    // The last volume: this read drives the pass to the end of the stream.
    assert_eq!(read_ok(&a, st[k], VOL), &data[at..at + VOL]);
    let done = a.wait_for_pass(std::time::Duration::from_secs(60));
    assert!(matches!(done, Some(Outcome::Complete { .. })), "{done:?}");
    wait_for_saves();
    let f = a.index_path().unwrap().to_path_buf();
    assert!(f.exists(), "saved by the thread it was handed to");
    let b = GzAccess::open(&p, st.clone(), Some(d.path())).unwrap();
    assert!(matches!(b.state(), IndexState::Complete { .. }));
    assert_eq!(
        read_ok(&b, st[1], VOL),
        &data[st[1] as usize..st[1] as usize + VOL]
    );
    assert!(
        b.inflated_bytes() < 2 * VOL as u64,
        "{}",
        b.inflated_bytes()
    );
}

#[test]
fn partial_index_is_saved_and_continued() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let a = GzAccess::open(&p, st.clone(), Some(d.path())).unwrap();
    read_ok(&a, st[2], 10);
    let IndexState::Partial { covered_bytes } = a.state() else {
        panic!()
    };
    drop(a); // saves on drop
    let b = GzAccess::open(&p, st.clone(), Some(d.path())).unwrap();
    assert_eq!(b.state(), IndexState::Partial { covered_bytes });
    assert_eq!(
        read_ok(&b, st[2], 100),
        &data[st[2] as usize..st[2] as usize + 100]
    );
    // The pass resumes at the last saved checkpoint (at most a volume before
    // the bytes read), not at the start.
    assert!(b.inflated_bytes() < VOL as u64, "{}", b.inflated_bytes());
    assert_eq!(
        read_ok(&b, st[4], VOL),
        &data[st[4] as usize..st[4] as usize + VOL]
    );
    let from = b
        .checkpoint_offsets()
        .into_iter()
        .filter(|&c| c <= covered_bytes)
        .max()
        .unwrap();
    let need = st[4] + VOL as u64 - from;
    assert!(
        b.inflated_bytes() < need + 300_000,
        "{} vs {need}",
        b.inflated_bytes()
    );
}

#[test]
fn stale_key_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let f = build(&p, &st, d.path());
    // change the mtime: the old index is moved to the new key's name
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(t)
        .unwrap();
    let new_name = persist::file_name(&IndexKey::for_file(&p).unwrap());
    std::fs::rename(&f, d.path().join(new_name)).unwrap();
    assert_rebuilt(&p, &data, &st, d.path());
}

#[test]
fn other_starts_are_ignored() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    build(&p, &starts(VOL / 2, NVOL * 2), d.path());
    assert_rebuilt(&p, &data, &st, d.path());
}

#[test]
fn truncated_index_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let f = build(&p, &st, d.path());
    let bytes = std::fs::read(&f).unwrap();
    for cut in [0, 10, 30, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&f, &bytes[..cut]).unwrap();
        assert_rebuilt(&p, &data, &st, d.path());
    }
}

#[test]
fn flipped_byte_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let f = build(&p, &st, d.path());
    let bytes = std::fs::read(&f).unwrap();
    for at in [3, 9, 14, 20, 40, bytes.len() / 3, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        std::fs::write(&f, &b).unwrap();
        assert_rebuilt(&p, &data, &st, d.path());
    }
}

/// An index with a valid checksum but forged content: rejected on load when
/// out of bounds, otherwise at worst an error on read, never a panic.
#[test]
fn forged_index_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let (p, data, st) = fixture(d.path());
    let f = build(&p, &st, d.path());
    let key = IndexKey::for_file(&p).unwrap();
    let good = persist::decode(&std::fs::read(&f).unwrap(), &key, &st).unwrap();
    type Forgery = Box<dyn Fn(&mut index::Index)>;
    let forgeries: Vec<Forgery> = vec![
        Box::new(|ix| ix.cps[2].bitpos += 3),
        Box::new(|ix| ix.cps[2].bitpos = u64::MAX - 7),
        Box::new(|ix| ix.cps[3].out += 1),
        Box::new(|ix| ix.cps[3].crc ^= 1),
        Box::new(|ix| ix.cps[3].member_out = ix.cps[3].out + 1),
        Box::new(|ix| ix.cps[4].member_start = true),
        Box::new(|ix| ix.cps[1].window = std::sync::Arc::from(vec![0u8; 100])),
        Box::new(|ix| ix.cps.swap(1, 2)),
        Box::new(|ix| ix.segs[5].end = ix.segs[4].end),
        Box::new(|ix| ix.total = Some(5)),
        // A segment CRC changed and every CRC that depends on it made
        // consistent: it loads, and the read that decodes the segment fails.
        Box::new(|ix| {
            ix.segs[7].crc ^= 1;
            reseal(ix);
        }),
    ];
    let mut errors = 0;
    for (i, forge) in forgeries.iter().enumerate() {
        let mut ix = good.clone();
        for c in &mut ix.cps {
            c.packed = Default::default();
        }
        forge(&mut ix);
        persist::save(&f, &key, &ix).unwrap();
        let a = GzAccess::open(&p, st.clone(), None).unwrap();
        drop(a);
        let a = GzAccess::open(&p, st.clone(), Some(d.path())).unwrap();
        // forgeries 0 and 10 pass the checks on load; the rest must not
        assert_eq!(
            a.state() != IndexState::None,
            [0, 10].contains(&i),
            "forgery {i}"
        );
        for &s in st.iter().rev() {
            let mut buf = vec![0u8; VOL];
            match a.read_exact_at(s, &mut buf) {
                Ok(()) if buf == data[s as usize..s as usize + VOL] => {}
                Ok(()) => panic!("forgery {i}: wrong bytes at {s} went unnoticed"),
                Err(_) => errors += 1,
            }
        }
    }
    assert_eq!(
        errors, 2,
        "each loaded forgery causes one error, then the index is rebuilt"
    );
}

/// Recomputes the member and checkpoint CRCs of a one-member index from its segments.
fn reseal(ix: &mut index::Index) {
    let (mut crc, mut prev) = (0u32, 0u64);
    let mut at = vec![(0u64, 0u32)];
    for s in &ix.segs {
        crc = segments::combine(crc, s.crc, s.end - prev);
        prev = s.end;
        at.push((s.end, crc));
    }
    for c in &mut ix.cps {
        c.crc = at.iter().find(|(o, _)| *o == c.out).unwrap().1;
    }
    ix.members[0].crc = crc;
}
