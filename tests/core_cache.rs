//! Core tests of the per-image caches (no FUSE mount): `nifuse::cache::Caches`
//! driven directly with images probed from temporary files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{bytes, gzip, nifti1};
use nifuse::cache::{CHUNK, Caches, Mode};
use nifuse::fs::image::{Image, probe_file};

/// Voxel data offset of the images built by `common::nifti1`.
const DATA_OFFSET: usize = 352;

/// A temporary directory holding test images.
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes an int16 image `name` with `dims` and pseudo-random voxels;
    /// returns the probed image and its voxel bytes.
    fn image(&self, name: &str, dims: &[i16], seed: u64) -> (Arc<Image>, Vec<u8>) {
        let voxels: usize = dims.iter().map(|&d| d as usize).product();
        let data = bytes(voxels * 2, seed);
        let file = nifti1(dims, 4, 16, 0, &data);
        std::fs::write(self.path(name), &file).expect("write image");
        (self.probe(name), data)
    }

    fn probe(&self, name: &str) -> Arc<Image> {
        Arc::new(probe_file(&self.path(name), name, None).expect("probe").1)
    }
}

/// Runs `f` on another thread and fails the test if it takes longer than
/// `secs` (a cache reader that hangs must not hang the test suite).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish within {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// `Caches::read` of `len` bytes at `offset`, returning (served, bytes).
fn read(c: &Caches, path: &str, img: &Arc<Image>, offset: u64, len: usize) -> (bool, Vec<u8>) {
    let mut out = vec![0u8; len];
    let served = c.read(Path::new(path), img, offset, &mut out);
    (served, out)
}

/// The stats row of `path`: (state, bytes, hits, misses, mode).
fn row(c: &Caches, path: &str) -> (&'static str, u64, u64, u64, Mode) {
    let s = c
        .stats()
        .into_iter()
        .find(|s| s.path == Path::new(path))
        .unwrap_or_else(|| panic!("no stats row for {path}"));
    (s.state, s.bytes, s.hits, s.misses, s.mode)
}

#[test]
fn fill_mode_serves_source_bytes_and_becomes_full() {
    let d = Dir::new();
    // 8x8x8x10 int16: 10240 bytes of voxels, one chunk.
    let (img, data) = d.image("a.nii", &[8, 8, 8, 10], 1);
    let c = Caches::new(Mode::Fill, 1 << 30);
    let p = Path::new("a.nii");
    assert!(!c.in_memory(p, &img));
    assert_eq!(c.used(), 0);

    let (served, got) = read(&c, "a.nii", &img, 100, 1000);
    assert!(served, "fill mode: the first read is served from the cache");
    assert_eq!(got, &data[100..1100]);
    // Reading the last bytes needs every chunk: the cache is full afterwards.
    let n = data.len();
    let (served, got) = read(&c, "a.nii", &img, (n - 17) as u64, 17);
    assert!(served);
    assert_eq!(got, &data[n - 17..]);
    assert!(c.in_memory(p, &img), "full after reading the last bytes");
    assert_eq!(c.used(), n as u64);
    assert_eq!(row(&c, "a.nii"), ("full", n as u64, 2, 0, Mode::Fill));

    // Later reads are hits, with the right bytes; a read past the array is not served.
    let (served, got) = read(&c, "a.nii", &img, 0, n);
    assert!(served);
    assert_eq!(got, data);
    let (served, _) = read(&c, "a.nii", &img, (n - 4) as u64, 8);
    assert!(
        !served,
        "a read past the end of the array is left to the caller"
    );
    assert_eq!(row(&c, "a.nii"), ("full", n as u64, 3, 1, Mode::Fill));
    let (served, got) = read(&c, "a.nii", &img, 4096, 1);
    assert!(served);
    assert_eq!(got, &data[4096..4097]);
    assert_eq!(row(&c, "a.nii"), ("full", n as u64, 4, 1, Mode::Fill));
}

#[test]
fn fill_mode_on_a_gzip_source() {
    let d = Dir::new();
    let data = bytes(16 * 16 * 8 * 12 * 2, 7);
    std::fs::write(
        d.path("g.nii.gz"),
        gzip(&nifti1(&[16, 16, 8, 12], 4, 16, 0, &data)),
    )
    .unwrap();
    let img = d.probe("g.nii.gz");
    let c = Caches::new(Mode::Fill, 1 << 30);
    // A compressed image's reader never waits for the fill: the first read
    // starts it and is either served (fill already there) or left to the caller.
    let (served, got) = read(&c, "g.nii.gz", &img, 5000, 3000);
    assert!(!served || got == data[5000..8000]);
    let start = std::time::Instant::now();
    while !c.in_memory(Path::new("g.nii.gz"), &img) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "fill never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (served, got) = read(&c, "g.nii.gz", &img, 0, data.len());
    assert!(served);
    assert_eq!(got, data, "decoded bytes in the cache");
}

#[test]
fn unchanged_mode_never_fills_but_uses_a_full_cache() {
    let d = Dir::new();
    let (img, data) = d.image("a.nii", &[8, 8, 8, 10], 2);
    let p = Path::new("a.nii");
    let n = data.len();

    // Default mode unchanged: nothing is ever cached.
    let c = Caches::new(Mode::Unchanged, 1 << 30);
    for _ in 0..3 {
        let (served, _) = read(&c, "a.nii", &img, 0, n);
        assert!(!served, "unchanged: the caller reads the source");
    }
    assert!(!c.in_memory(p, &img));
    assert_eq!(c.used(), 0);
    assert_eq!(row(&c, "a.nii"), ("empty", 0, 0, 3, Mode::Unchanged));

    // Switch to fill: filled by the next read; back to unchanged: the full cache is used.
    c.set_mode(p, Mode::Fill);
    assert_eq!(c.mode(p), Mode::Fill);
    let (served, got) = read(&c, "a.nii", &img, 0, n);
    assert!(served);
    assert_eq!(got, data);
    assert!(c.in_memory(p, &img));
    c.set_mode(p, Mode::Unchanged);
    assert_eq!(c.mode(p), Mode::Unchanged);
    let (served, got) = read(&c, "a.nii", &img, 10, 500);
    assert!(served, "unchanged uses a cache that is full");
    assert_eq!(got, &data[10..510]);
    assert_eq!(row(&c, "a.nii"), ("full", n as u64, 2, 3, Mode::Unchanged));
    // Dropped: unchanged does not bring it back.
    assert!(c.uncache(p));
    let (served, _) = read(&c, "a.nii", &img, 10, 500);
    assert!(!served);
    assert!(!c.in_memory(p, &img));
    assert_eq!(c.used(), 0);

    // Default fill, unchanged set for one image: only the other one fills.
    let (img_b, data_b) = d.image("b.nii", &[8, 8, 8, 4], 3);
    let c = Caches::new(Mode::Fill, 1 << 30);
    c.set_mode(p, Mode::Unchanged);
    assert_eq!(c.mode(Path::new("b.nii")), Mode::Fill);
    assert!(!read(&c, "a.nii", &img, 0, n).0);
    let (served, got) = read(&c, "b.nii", &img_b, 0, data_b.len());
    assert!(served);
    assert_eq!(got, data_b);
    assert!(!c.in_memory(p, &img));
    assert!(c.in_memory(Path::new("b.nii"), &img_b));
    assert_eq!(c.used(), data_b.len() as u64);
}

#[test]
fn budget_evicts_the_least_recently_used_image() {
    let d = Dir::new();
    // 50x40x10x10 int16 = 400,000 bytes each: 40% of the budget.
    let budget = 1_000_000u64;
    let (a, da) = d.image("a.nii", &[50, 40, 10, 10], 11);
    let (b, db) = d.image("b.nii", &[50, 40, 10, 10], 12);
    let (cimg, dc) = d.image("c.nii", &[50, 40, 10, 10], 13);
    let c = Caches::new(Mode::Fill, budget);
    assert_eq!(c.budget(), budget);
    let full = |name: &str, img: &Arc<Image>, data: &[u8]| {
        let (served, got) = read(&c, name, img, 0, data.len());
        assert!(served, "{name} served");
        assert_eq!(got, data, "{name} bytes");
        assert!(
            c.used() <= budget,
            "used {} over budget after {name}",
            c.used()
        );
    };
    full("a.nii", &a, &da);
    full("b.nii", &b, &db);
    // Touch A again: B is now the least recently used.
    let (served, got) = read(&c, "a.nii", &a, 7, 9);
    assert!(served);
    assert_eq!(got, &da[7..16]);
    full("c.nii", &cimg, &dc);
    assert!(
        c.in_memory(Path::new("a.nii"), &a),
        "A (recently used) kept"
    );
    assert!(
        !c.in_memory(Path::new("b.nii"), &b),
        "B (least recently used) evicted"
    );
    assert!(c.in_memory(Path::new("c.nii"), &cimg), "C cached");
    assert_eq!(c.used(), 800_000);
    assert_eq!(row(&c, "b.nii").0, "empty");

    // B again: now A is the least recently used.
    full("b.nii", &b, &db);
    assert!(!c.in_memory(Path::new("a.nii"), &a), "A evicted");
    assert!(c.in_memory(Path::new("b.nii"), &b));
    assert!(c.in_memory(Path::new("c.nii"), &cimg));
    assert_eq!(c.used(), 800_000);
}

#[test]
fn an_image_larger_than_the_budget_is_never_cached() {
    let d = Dir::new();
    let (small, ds) = d.image("small.nii", &[50, 40, 10, 10], 21); // 400,000 bytes
    let (big, _) = d.image("big.nii", &[50, 40, 10, 30], 22); // 1,200,000 bytes
    let c = Caches::new(Mode::Fill, 1_000_000);
    assert!(read(&c, "small.nii", &small, 0, ds.len()).0);
    for _ in 0..3 {
        let (served, _) = read(&c, "big.nii", &big, 0, 1000);
        assert!(!served, "too big for the budget: served from the source");
    }
    assert!(!c.in_memory(Path::new("big.nii"), &big));
    assert!(
        c.in_memory(Path::new("small.nii"), &small),
        "the small image is not evicted for nothing"
    );
    assert_eq!(c.used(), 400_000);
    assert_eq!(row(&c, "big.nii"), ("empty", 0, 0, 3, Mode::Fill));
}

#[test]
fn uncache_and_drop_all() {
    let d = Dir::new();
    let (a, da) = d.image("a.nii", &[8, 8, 8, 10], 31);
    let (b, db) = d.image("b.nii", &[8, 8, 8, 6], 32);
    let c = Caches::new(Mode::Fill, 1 << 30);
    assert!(!c.uncache(Path::new("a.nii")), "nothing to drop yet");
    assert_eq!(c.drop_all(), 0);
    assert!(read(&c, "a.nii", &a, 0, da.len()).0);
    assert!(read(&c, "b.nii", &b, 0, db.len()).0);
    assert!(c.in_memory(Path::new("a.nii"), &a) && c.in_memory(Path::new("b.nii"), &b));

    assert!(c.uncache(Path::new("a.nii")));
    assert!(
        !c.uncache(Path::new("a.nii")),
        "second uncache finds nothing"
    );
    assert!(!c.uncache(Path::new("nope.nii")));
    assert!(!c.in_memory(Path::new("a.nii"), &a));
    assert!(c.in_memory(Path::new("b.nii"), &b), "only a.nii dropped");
    assert_eq!(c.used(), db.len() as u64);
    assert_eq!(row(&c, "a.nii").0, "empty");

    // Fill mode refills on the next read.
    let (served, got) = read(&c, "a.nii", &a, 0, da.len());
    assert!(served);
    assert_eq!(got, da);
    assert!(c.in_memory(Path::new("a.nii"), &a));

    assert_eq!(c.drop_all(), 2);
    assert_eq!(c.drop_all(), 0);
    assert!(!c.in_memory(Path::new("a.nii"), &a));
    assert!(!c.in_memory(Path::new("b.nii"), &b));
    assert_eq!(c.used(), 0);
    assert!(c.stats().iter().all(|s| s.state == "empty" && s.bytes == 0));
}

/// A small deterministic generator for the concurrent readers.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn concurrent_readers_during_a_multi_chunk_fill() {
    let d = Dir::new();
    // 64x64x32x40 int16 = 10 MiB: three chunks.
    let (img, data) = d.image("big.nii", &[64, 64, 32, 40], 41);
    assert!(data.len() as u64 > 2 * CHUNK);
    let data = Arc::new(data);
    let c = Arc::new(Caches::new(Mode::Fill, 1 << 30));
    let (c2, img2, data2) = (c.clone(), img.clone(), data.clone());
    within(60, "8 concurrent readers", move || {
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (c, img, data, start) =
                    (c2.clone(), img2.clone(), data2.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut s = t + 1;
                    start.wait();
                    for i in 0..40 {
                        let n = data.len() as u64;
                        let len = 1 + lcg(&mut s) % 300_000;
                        let off = lcg(&mut s) % (n - len);
                        let mut out = vec![0u8; len as usize];
                        let served = c.read(Path::new("big.nii"), &img, off, &mut out);
                        assert!(
                            served,
                            "thread {t} read {i} at {off}+{len} not served in fill mode"
                        );
                        assert!(
                            out[..] == data[off as usize..(off + len) as usize],
                            "thread {t} read {i} at {off}+{len}: wrong bytes"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader thread");
        }
    });
    // The last bytes wait for the whole fill.
    let n = data.len();
    let (served, got) = read(&c, "big.nii", &img, (n - 3) as u64, 3);
    assert!(served);
    assert_eq!(got, &data[n - 3..]);
    assert!(c.in_memory(Path::new("big.nii"), &img));
    let (state, bytes, hits, misses, _) = row(&c, "big.nii");
    assert_eq!((state, bytes, hits, misses), ("full", n as u64, 321, 0));
    assert_eq!(c.used(), n as u64);
}

#[test]
fn uncache_during_a_fill_does_not_hang_readers() {
    let d = Dir::new();
    let (img, data) = d.image("big.nii", &[64, 64, 32, 40], 42);
    let data = Arc::new(data);
    let c = Arc::new(Caches::new(Mode::Fill, 1 << 30));
    let (c2, img2, data2) = (c.clone(), img.clone(), data.clone());
    let reader = std::thread::spawn(move || {
        let n = data2.len();
        let (served, got) = read(&c2, "big.nii", &img2, (n - 100) as u64, 100);
        if served {
            assert_eq!(got, &data2[n - 100..]);
        }
    });
    // Drop the cache once the reader has started its fill (most likely still
    // filling; if the fill already finished, uncache drops the full cache).
    let start = std::time::Instant::now();
    while c
        .stats()
        .iter()
        .all(|r| r.path != Path::new("big.nii") || r.state == "empty")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the reader never started a fill"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    c.uncache(Path::new("big.nii"));
    within(20, "reader of a cancelled fill", move || {
        reader.join().expect("reader")
    });
    assert!(!c.in_memory(Path::new("big.nii"), &img));
    // A fresh read fills again.
    let (served, got) = within(20, "refill", {
        let (c, img) = (c.clone(), img.clone());
        move || read(&c, "big.nii", &img, 0, 10 << 20)
    });
    assert!(served);
    assert!(got == data[..]);
    assert!(c.in_memory(Path::new("big.nii"), &img));
}

#[test]
fn truncated_source_fills_its_present_prefix_only() {
    let d = Dir::new();
    let dims = [64i16, 64, 32, 40]; // 10 MiB of voxels in the header
    let data = bytes(64 * 64 * 32 * 40 * 2, 51);
    let file = nifti1(&dims, 4, 16, 0, &data);
    let present = 6 << 20; // 6 MiB of voxels on disk: chunk 0 whole, chunk 1 partly
    std::fs::write(d.path("t.nii"), &file[..DATA_OFFSET + present]).unwrap();
    let img = d.probe("t.nii");
    assert_eq!(img.layout.data_bytes(), data.len() as u64);
    let c = Arc::new(Caches::new(Mode::Fill, 1 << 30));

    // Inside the whole first chunk: served, right bytes.
    let (served, got) = within(20, "read of the present prefix", {
        let (c, img) = (c.clone(), img.clone());
        move || read(&c, "t.nii", &img, 1000, 100_000)
    });
    assert!(served, "bytes of a complete chunk are served");
    assert_eq!(got, &data[1000..101_000]);
    // Present on disk but in the chunk the fill could not complete: right bytes or left to the caller.
    let (served, got) = within(20, "read in the partial chunk", {
        let (c, img) = (c.clone(), img.clone());
        move || read(&c, "t.nii", &img, (5 << 20) as u64, 4096)
    });
    if served {
        assert_eq!(got, &data[5 << 20..(5 << 20) + 4096]);
    }
    // Past the end of the file: never served (the caller reads the source and gets EIO).
    for off in [
        present as u64 + 10,
        (9 << 20) as u64,
        data.len() as u64 - 10,
    ] {
        let (served, _) = within(20, "read past the truncation", {
            let (c, img) = (c.clone(), img.clone());
            move || read(&c, "t.nii", &img, off, 10)
        });
        assert!(!served, "bytes at {off} are not on disk: not served");
    }
    assert!(!c.in_memory(Path::new("t.nii"), &img), "never full");
    // The fill stopped at the truncation: the first chunk is still served.
    let (served, got) = read(&c, "t.nii", &img, 0, 64);
    assert!(served);
    assert_eq!(got, &data[..64]);

    // An image truncated inside its only chunk: nothing served, nothing hangs.
    let small = nifti1(&[8, 8, 8, 10], 4, 16, 0, &bytes(10240, 52));
    std::fs::write(d.path("s.nii"), &small[..DATA_OFFSET + 5000]).unwrap();
    let simg = d.probe("s.nii");
    for off in [0u64, 4990, 6000] {
        let (served, _) = within(20, "read of a truncated one-chunk image", {
            let (c, simg) = (c.clone(), simg.clone());
            move || read(&c, "s.nii", &simg, off, 10)
        });
        assert!(
            !served,
            "s.nii at {off}: the chunk is incomplete, left to the caller"
        );
    }
    assert!(!c.in_memory(Path::new("s.nii"), &simg));
}

#[test]
fn a_new_image_version_does_not_use_the_old_cache() {
    let d = Dir::new();
    let (v1, d1) = d.image("a.nii", &[8, 8, 8, 10], 61);
    let p = Path::new("a.nii");
    let c = Caches::new(Mode::Fill, 1 << 30);
    assert!(read(&c, "a.nii", &v1, 0, d1.len()).0);
    assert!(c.in_memory(p, &v1));

    // Rewritten in place, different contents and size.
    let (v2, d2) = d.image("a.nii", &[8, 8, 8, 12], 62);
    assert_ne!(d1.len(), d2.len());
    assert!(
        !c.in_memory(p, &v2),
        "the old version's cache is not the new one's"
    );

    // Unchanged mode: the old full cache must not serve the new version.
    c.set_mode(p, Mode::Unchanged);
    let (served, got) = read(&c, "a.nii", &v2, 0, 1000);
    assert!(
        !served || got == d2[..1000],
        "old bytes served for the new version"
    );
    assert!(
        !served,
        "unchanged mode and no cache of the new version: caller reads the source"
    );

    // Fill mode: the new version is filled from the new file.
    c.set_mode(p, Mode::Fill);
    let (served, got) = read(&c, "a.nii", &v2, 0, d2.len());
    assert!(served);
    assert_eq!(got, d2);
    assert!(c.in_memory(p, &v2));
    assert!(!c.in_memory(p, &v1));
    assert_eq!(c.used(), d2.len() as u64, "one cache per image path");
}
