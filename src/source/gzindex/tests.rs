//! Tests of `GzAccess` against the uncompressed truth.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

/// Deterministic pseudo-random generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Smooth signal + noise, int16 little-endian (like a small fMRI image).
pub fn image_data(vol_bytes: usize, nvol: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(vol_bytes * nvol);
    for t in 0..nvol {
        for i in 0..vol_bytes / 2 {
            let s = 1000.0 + 300.0 * ((i as f64) / 900.0).sin() + 20.0 * (t as f64 / 7.0).cos();
            let noise = (rng.below(41) as i64 - 20) as f64;
            v.extend_from_slice(&((s + noise) as i16).to_le_bytes());
        }
    }
    v
}

pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn read_ok(a: &GzAccess, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    a.read_exact_at(off, &mut b)
        .unwrap_or_else(|e| panic!("read {len} at {off}: {e}"));
    b
}

const VOL: usize = 300_000;
const NVOL: usize = 12;

pub fn starts(vol: usize, n: usize) -> Vec<u64> {
    (0..n).map(|k| 352 + (k * vol) as u64).collect()
}

/// A "NIfTI-like" file: 352-byte header + volumes.
fn fixture(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut data = vec![7u8; 352];
    data.extend(image_data(VOL, NVOL, 42));
    let p = write_file(dir, "img.nii.gz", &gzip(&data, 6));
    (p, data)
}

#[test]
fn random_reads_match_truth() {
    let d = tempfile::tempdir().unwrap();
    let (p, data) = fixture(d.path());
    let a = GzAccess::open(&p, starts(VOL, NVOL), None).unwrap();
    let n = data.len() as u64;
    let mut rng = Rng(7);
    // whole file, single bytes, last byte
    assert_eq!(read_ok(&a, 0, data.len()), data);
    assert_eq!(read_ok(&a, n - 1, 1), &data[data.len() - 1..]);
    assert_eq!(read_ok(&a, 0, 1), &data[..1]);
    for _ in 0..300 {
        let off = rng.below(n);
        let len = 1 + rng.below((n - off).min(700_000)) as usize;
        assert_eq!(
            read_ok(&a, off, len),
            &data[off as usize..off as usize + len],
            "at {off}+{len}"
        );
    }
    // across every checkpoint boundary
    for cp in a.checkpoint_offsets() {
        let off = cp.saturating_sub(3);
        let len = 7.min((n - off) as usize);
        assert_eq!(
            read_ok(&a, off, len),
            &data[off as usize..off as usize + len]
        );
    }
    let e = a.read_exact_at(n - 2, &mut [0u8; 3]).unwrap_err();
    assert!(
        matches!(e, GzError::OutOfRange { total, .. } if total == n),
        "{e}"
    );
}

#[test]
fn checkpoints_at_every_start_and_volume_cost() {
    let d = tempfile::tempdir().unwrap();
    let (p, data) = fixture(d.path());
    let st = starts(VOL, NVOL);
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    a.build_all(&mut |_, _| {}).unwrap();
    assert_eq!(
        a.state(),
        IndexState::Complete {
            total_bytes: data.len() as u64
        }
    );
    let cps = a.checkpoint_offsets();
    for &s in &st {
        // the last checkpoint <= s is within one deflate block of s
        let i = cps.partition_point(|&c| c <= s);
        let c = cps[i - 1];
        assert!(s - c < 100_000, "start {s}: nearest checkpoint {c}");
    }
    assert!(cps.len() <= NVOL + 3, "{} checkpoints", cps.len());
    // reading any volume now costs about one volume of inflate
    let b = tempfile::tempdir().unwrap();
    drop(b);
    for k in [5usize, 1, 11, 3] {
        let before = a.inflated_bytes();
        let got = read_ok(&a, st[k], VOL);
        assert_eq!(got, &data[st[k] as usize..st[k] as usize + VOL]);
        let cost = a.inflated_bytes() - before;
        assert!(cost < VOL as u64 + 150_000, "volume {k} cost {cost}");
    }
}

#[test]
fn large_volumes_get_span_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let vol = 5 << 20;
    let mut data = vec![1u8; 352];
    data.extend(image_data(vol, 2, 3));
    let p = write_file(d.path(), "big.nii.gz", &gzip(&data, 6));
    let a = GzAccess::open(&p, starts(vol, 2), None).unwrap();
    let off = 352 + vol as u64 + 4_500_000;
    assert_eq!(
        read_ok(&a, off, 1000),
        &data[off as usize..off as usize + 1000]
    );
    let cps = a.checkpoint_offsets();
    for w in cps.windows(2) {
        assert!(w[1] - w[0] < index::SPAN + 200_000, "{cps:?}");
    }
    let before = a.inflated_bytes();
    let off = 352 + 3_300_000;
    assert_eq!(read_ok(&a, off, 10), &data[off as usize..off as usize + 10]);
    assert!(a.inflated_bytes() - before < index::SPAN + 300_000);
}

#[test]
fn lazily_built() {
    let d = tempfile::tempdir().unwrap();
    let (p, data) = fixture(d.path());
    let st = starts(VOL, NVOL);
    let a = GzAccess::open(&p, st.clone(), None).unwrap();
    assert_eq!(a.state(), IndexState::None);
    read_ok(&a, st[1], 100);
    let IndexState::Partial { covered_bytes } = a.state() else {
        panic!("{:?}", a.state())
    };
    assert!(
        covered_bytes <= st[1] + 400_000 && covered_bytes > 0,
        "{covered_bytes}"
    );
    assert!(a.checkpoint_offsets().iter().all(|&c| c <= covered_bytes));
    assert!(a.inflated_bytes() < st[1] + 400_000);
    // continued later
    read_ok(&a, st[4] + 10, 100);
    let IndexState::Partial { covered_bytes: c2 } = a.state() else {
        panic!()
    };
    assert!(c2 > covered_bytes && c2 <= st[4] + 500_000);
    let cps = a.checkpoint_offsets();
    assert!(cps.len() >= 5 && cps.len() <= 7, "{cps:?}");
    assert_eq!(read_ok(&a, 0, data.len()), data);
}

#[test]
fn multi_member() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(200_000, 5, 9);
    let mut gz = Vec::new();
    for (i, chunk) in data.chunks(130_001).enumerate() {
        gz.extend(gzip(chunk, if i % 2 == 0 { 6 } else { 1 }));
    }
    gz.extend(gzip(b"", 6)); // an empty member
    let p = write_file(d.path(), "multi.gz", &gz);
    let a = GzAccess::open(&p, starts(200_000, 5), None).unwrap();
    let mut rng = Rng(11);
    let n = data.len() as u64;
    for _ in 0..200 {
        let off = rng.below(n);
        let len = 1 + rng.below((n - off).min(300_000)) as usize;
        assert_eq!(
            read_ok(&a, off, len),
            &data[off as usize..off as usize + len]
        );
    }
    a.build_all(&mut |_, _| {}).unwrap();
    assert_eq!(a.state(), IndexState::Complete { total_bytes: n });
    assert_eq!(read_ok(&a, 0, data.len()), data);
}

#[test]
fn incompressible_stored_blocks() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(5);
    let data: Vec<u8> = (0..3_000_000).map(|_| rng.next() as u8).collect();
    for level in [0, 6] {
        let p = write_file(d.path(), &format!("rand{level}.gz"), &gzip(&data, level));
        let a = GzAccess::open(&p, starts(600_000, 5), None).unwrap();
        for _ in 0..100 {
            let off = rng.below(data.len() as u64);
            let len = 1 + rng.below((data.len() as u64 - off).min(200_000)) as usize;
            assert_eq!(
                read_ok(&a, off, len),
                &data[off as usize..off as usize + len]
            );
        }
        assert!(a.checkpoint_count() >= 5);
    }
}

#[test]
fn tiny_and_empty() {
    let d = tempfile::tempdir().unwrap();
    let p = write_file(d.path(), "empty.gz", &gzip(b"", 6));
    let a = GzAccess::open(&p, vec![0], None).unwrap();
    assert!(matches!(
        a.read_exact_at(0, &mut [0u8; 1]),
        Err(GzError::OutOfRange { total: 0, .. })
    ));
    a.read_exact_at(0, &mut []).unwrap();
    let p = write_file(d.path(), "one.gz", &gzip(b"x", 6));
    let a = GzAccess::open(&p, vec![0], None).unwrap();
    assert_eq!(read_ok(&a, 0, 1), b"x");
    a.build_all(&mut |_, _| {}).unwrap();
    assert_eq!(a.state(), IndexState::Complete { total_bytes: 1 });
    let p = write_file(d.path(), "zero.gz", b"");
    let a = GzAccess::open(&p, vec![], None).unwrap();
    assert!(matches!(
        a.read_exact_at(0, &mut [0u8; 1]),
        Err(GzError::Truncated { available: 0 })
    ));
    let p = write_file(d.path(), "notgz", b"hello world, not gzip");
    let a = GzAccess::open(&p, vec![], None).unwrap();
    assert!(matches!(
        a.read_exact_at(0, &mut [0u8; 1]),
        Err(GzError::Corrupt { .. })
    ));
}

#[test]
fn truncated_file() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, 4, 1);
    let gz = gzip(&data, 6);
    for cut in [gz.len() / 2, gz.len() - 4, 15] {
        let p = write_file(d.path(), "t.gz", &gz[..cut]);
        let a = GzAccess::open(&p, starts(VOL, 4), None).unwrap();
        let mut buf = vec![0u8; data.len()];
        match a.read_exact_at(0, &mut buf) {
            // Only the trailer is cut: every requested byte was decoded, so
            // the read succeeds (whole-stream checks are the caller's verify pass).
            Ok(()) if cut == gz.len() - 4 => assert_eq!(buf, data),
            Err(GzError::Truncated { available }) => {
                assert!(available < data.len() as u64);
                let ioe: std::io::Error = GzError::Truncated { available }.into();
                assert_eq!(ioe.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
        // the part before the cut is still readable
        if cut > 1000 {
            assert_eq!(read_ok(&a, 0, 100), &data[..100]);
        }
    }
}

#[test]
fn corrupt_middle_is_error_not_wrong_bytes() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, 4, 2);
    let gz = gzip(&data, 6);
    let mut rng = Rng(99);
    for trial in 0..20 {
        let mut bad = gz.clone();
        let at = 100 + rng.below(gz.len() as u64 - 120) as usize;
        bad[at] ^= 1 << (trial % 8);
        let p = write_file(d.path(), "c.gz", &bad);
        let a = GzAccess::open(&p, starts(VOL, 4), None).unwrap();
        let mut buf = vec![0u8; data.len()];
        match a.read_exact_at(0, &mut buf) {
            Err(GzError::Corrupt { .. }) => {}
            Ok(()) => panic!("corruption at {at} not detected"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

#[test]
fn sequential_reader_inflates_once() {
    let d = tempfile::tempdir().unwrap();
    let (p, data) = fixture(d.path());
    let a = GzAccess::open(&p, starts(VOL, NVOL), None).unwrap();
    let mut off = 0;
    while off < data.len() {
        let len = (128 * 1024).min(data.len() - off);
        assert_eq!(read_ok(&a, off as u64, len), &data[off..off + len]);
        off += len;
    }
    let total = a.inflated_bytes();
    assert!(
        total as f64 <= 1.1 * data.len() as f64,
        "inflated {total} for {}",
        data.len()
    );
    assert_eq!(
        a.state(),
        IndexState::Complete {
            total_bytes: data.len() as u64
        }
    );
}

#[test]
fn concurrent_readers() {
    let d = tempfile::tempdir().unwrap();
    let (p, data) = fixture(d.path());
    let st = starts(VOL, NVOL);
    let a = Arc::new(GzAccess::open(&p, st.clone(), None).unwrap());
    let data = Arc::new(data);
    let hs: Vec<_> = (0..4u64)
        .map(|t| {
            let (a, data, st) = (a.clone(), data.clone(), st.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t + 100);
                for _ in 0..25 {
                    let k = rng.below(NVOL as u64) as usize;
                    let off = st[k] + rng.below(VOL as u64 / 2);
                    let len = 1 + rng.below(VOL as u64 / 2) as usize;
                    assert_eq!(
                        read_ok(&a, off, len),
                        &data[off as usize..off as usize + len]
                    );
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GzAccess>();
}

#[test]
fn checkpoints_before_an_inflate_error_survive_the_failed_build() {
    let d = tempfile::tempdir().unwrap();
    let data = image_data(VOL, 12, 5);
    let mut gz = gzip(&data, 6);
    let at = gz.len() * 3 / 4;
    for b in &mut gz[at..at + 64] {
        *b ^= 0x5a;
    }
    let p = write_file(d.path(), "c.gz", &gz);
    let a = GzAccess::open(&p, starts(VOL, 12), None).unwrap();
    let err = a.build_all(&mut |_, _| {}).unwrap_err();
    let GzError::Corrupt { at_compressed, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        a.checkpoint_count() > 3,
        "{} checkpoints, error at {at_compressed}",
        a.checkpoint_count()
    );
    assert!(a.trusted_before(at_compressed, 1024) >= VOL as u64);
}
