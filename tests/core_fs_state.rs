//! Core tests (no FUSE mount) of per-image state through `Fs`: caches and
//! `.nifuse/stats`, drop_caches, forget, and sources that change.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use common::corefs::*;
use common::gzip;
use common::json::{J, parse_json};
use nifuse::cache::Mode;
use nifuse::fs::Fs;
use nifuse::fs::attr::Kind;

fn stats(f: &Fs) -> (String, J) {
    let ino = walk(f, ".nifuse/stats");
    let opened = f.open(ino, libc::O_RDONLY).unwrap();
    assert!(
        opened.direct_io,
        "stats has no size known in advance: direct_io"
    );
    let text = String::from_utf8(f.read(opened.fh, 0, 1 << 20).unwrap()).unwrap();
    // Reads at an offset see the same snapshot.
    assert_eq!(f.read(opened.fh, 5, 10).unwrap(), text.as_bytes()[5..15]);
    f.release(opened.fh);
    let json = parse_json(&text);
    (text, json)
}

#[test]
fn stats_json_and_drop_caches() {
    let weird = "we\"ird\\name.nii";
    let s = Src::new(|src| {
        fs::write(src.join("a.nii"), image(&[4, 5, 6, 7], 1, 0).0).unwrap();
        fs::write(src.join("b.nii.gz"), gzip(&image(&[4, 5, 6, 7], 2, 0).0)).unwrap();
        fs::write(src.join(weird), image(&[4, 5, 6, 2], 3, 0).0).unwrap();
        fs::write(src.join("notes.txt"), b"hi").unwrap();
    });
    let f = s.fs(Mode::Fill);
    let (_, j) = stats(&f);
    assert_eq!(j.get("images").arr().len(), 0, "nothing probed yet");

    // a.nii: one header-only read (no cache access), two data reads (hits).
    let va = walk(&f, "a.nii.d/vol_0001.nii");
    let fh = f.open(va, libc::O_RDONLY).unwrap().fh;
    f.read(fh, 0, 100).unwrap();
    f.read(fh, 0, 4096).unwrap();
    f.read(fh, 400, 10).unwrap();
    f.release(fh);
    // b.nii.gz: unchanged, one data read (a miss).
    f.setxattr(
        walk(&f, "b.nii.gz"),
        OsStr::new("user.cache_mode"),
        b"unchanged",
    )
    .unwrap();
    let vb = walk(&f, "b.nii.gz.d/vol_0000.nii");
    read_all(&f, vb);
    walk(&f, &format!("{weird}.d"));

    let (text, j) = stats(&f);
    let rows = j.get("images").arr();
    assert_eq!(rows.len(), 3, "{text}");
    let ra = j.image_row("a.nii");
    assert_eq!(ra.get("volumes").num(), 7.0);
    assert_eq!(ra.get("compressed"), &J::Bool(false));
    assert_eq!(ra.get("cache_mode").str(), "fill");
    assert_eq!(ra.get("cache_state").str(), "full");
    assert_eq!(ra.get("cache_bytes").num(), (7 * VOL) as f64);
    assert_eq!(
        (ra.get("hits").num(), ra.get("misses").num()),
        (2.0, 0.0),
        "{text}"
    );
    let rb = j.image_row("b.nii.gz");
    assert_eq!(rb.get("compressed"), &J::Bool(true));
    assert_eq!(rb.get("cache_mode").str(), "unchanged");
    assert_eq!(rb.get("cache_state").str(), "empty");
    assert_eq!(rb.get("cache_bytes").num(), 0.0);
    assert_eq!(
        (rb.get("hits").num(), rb.get("misses").num()),
        (0.0, 1.0),
        "{text}"
    );
    assert!(!rb.get("index").str().is_empty());
    let rw = j.image_row(weird);
    assert_eq!(rw.get("volumes").num(), 2.0);
    assert_eq!(rw.get("cache_state").str(), "empty");
    let t = j.get("totals");
    assert_eq!(t.get("images").num(), 3.0);
    assert_eq!(t.get("cached_images").num(), 1.0);
    assert_eq!(t.get("cache_bytes").num(), (7 * VOL) as f64);
    assert_eq!(t.get("cache_budget").num(), BUDGET as f64);
    assert_eq!((t.get("hits").num(), t.get("misses").num()), (2.0, 1.0));

    // drop_caches: "1" empties every cache; other values are EINVAL.
    f.setxattr(walk(&f, "b.nii.gz"), OsStr::new("user.cache_mode"), b"fill")
        .unwrap();
    read_all(&f, vb);
    assert!(f.in_memory(Path::new("a.nii")) && filled(&f, "b.nii.gz"));
    let dc = walk(&f, ".nifuse/drop_caches");
    let dca = f.getattr(dc).unwrap().attr;
    assert_eq!((dca.kind, dca.perm, dca.uid), (Kind::File, 0o644, 1234));
    let fh = f.open(dc, libc::O_WRONLY | libc::O_TRUNC).unwrap().fh;
    for bad in [&b"0"[..], b"2", b"", b"\n", b"abc", b"11", b"1 2"] {
        assert_eq!(errno(f.write(fh, bad)), libc::EINVAL, "{bad:?}");
    }
    assert!(
        f.in_memory(Path::new("a.nii")),
        "invalid writes drop nothing"
    );
    assert_eq!(f.write(fh, b"1\n").unwrap(), 2);
    f.release(fh);
    assert!(!f.in_memory(Path::new("a.nii")));
    assert!(!f.in_memory(Path::new("b.nii.gz")));
    let (text, j) = stats(&f);
    assert_eq!(j.get("totals").get("cached_images").num(), 0.0, "{text}");
    assert_eq!(j.get("totals").get("cache_bytes").num(), 0.0);
    assert!(
        j.get("images")
            .arr()
            .iter()
            .all(|r| r.get("cache_state").str() == "empty"),
        "{text}"
    );
    // Reading drop_caches gives nothing; writing "1" with a plain open works too.
    let fh = f.open(dc, libc::O_WRONLY).unwrap().fh;
    assert_eq!(f.write(fh, b"1").unwrap(), 1);
    f.release(fh);
    let fh = f.open(dc, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(fh, 0, 100).unwrap(), b"");
    f.release(fh);
}

// ---------------------------------------------------------------- forget

#[test]
fn forgetting_every_inode_of_an_image_drops_its_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let a = Path::new("a.nii");
    let ai = walk(&f, "a.nii");
    let ad = walk(&f, "a.nii.d");
    let v0 = walk(&f, "a.nii.d/vol_0000.nii"); // second lookup of a.nii.d
    let v3 = f.lookup(ad, OsStr::new("vol_0003.nii")).unwrap().attr.ino;
    f.lookup(ad, OsStr::new("vol_0003.nii")).unwrap();
    read_all(&f, v3);
    assert!(f.in_memory(a));
    // Another image's cache is not affected.
    read_all(&f, walk(&f, "sub/c.nii.d/vol_0000.nii"));
    assert!(f.in_memory(Path::new("sub/c.nii")));

    // Lookups held: a.nii 1, a.nii.d 2, vol_0000 1, vol_0003 2.
    assert_eq!(f.forget(v3, 2), None);
    assert_eq!(f.forget(ad, 2), None);
    assert_eq!(f.forget(v0, 1), None);
    assert!(f.in_memory(a), "a.nii itself is still looked up");
    assert_eq!(f.forget(ai, 1), Some(a.to_path_buf()));
    assert!(
        !f.in_memory(a),
        "no inode of a.nii held and nothing open: cache dropped"
    );
    assert!(
        f.in_memory(Path::new("sub/c.nii")),
        "other images keep their caches"
    );
    // Forgetting again does nothing.
    assert_eq!(f.forget(ai, 1), None);

    // Only NAME.d and a volume looked up: forgetting them is enough.
    let bd = walk(&f, "b.nii.gz.d");
    let b1 = f.lookup(bd, OsStr::new("vol_0001.nii")).unwrap().attr.ino;
    read_all(&f, b1);
    assert!(filled(&f, "b.nii.gz"));
    assert_eq!(f.forget(bd, 1), None);
    assert_eq!(f.forget(b1, 5), Some(Path::new("b.nii.gz").to_path_buf()));
    assert!(!f.in_memory(Path::new("b.nii.gz")));
}

#[test]
fn forgetting_an_image_with_an_open_volume_keeps_its_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let a = Path::new("a.nii");
    let ad = walk(&f, "a.nii.d");
    let v = f.lookup(ad, OsStr::new("vol_0005.nii")).unwrap().attr.ino;
    let fh = f.open(v, libc::O_RDONLY).unwrap().fh;
    let (afile, _) = image(&[4, 5, 6, 7], 1, 0);
    assert_eq!(
        f.read(fh, 0, 1 << 20).unwrap(),
        expected_volume(&afile, VOL, 5)
    );
    assert!(f.in_memory(a));
    f.forget(v, 1);
    f.forget(ad, 1);
    assert!(f.in_memory(a), "a volume of a.nii is open: cache kept");
    assert_eq!(
        f.read(fh, 0, 1 << 20).unwrap(),
        expected_volume(&afile, VOL, 5)
    );
    f.release(fh);
}

// ---------------------------------------------------------------- changes

#[test]
fn a_rewritten_source_is_seen_by_getattr_lookup_and_open() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let ad = walk(&f, "a.nii.d");
    let ai = walk(&f, "a.nii");
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let v5 = walk(&f, "a.nii.d/vol_0005.nii");
    assert_eq!(read_all(&f, v2), expected_volume(&old, VOL, 2));
    assert!(f.in_memory(Path::new("a.nii")));

    // Rewritten in place: 8x8x8x3, a different volume size and count.
    let (new, _) = image(&[8, 8, 8, 3], 77, 0);
    let new_vol = 8 * 8 * 8 * 2;
    fs::write(s.dir().join("a.nii"), &new).unwrap();
    assert_eq!(f.getattr(ai).unwrap().attr.size, new.len() as u64);
    // Inodes of the old version are stale: the kernel looks the names up again.
    assert_eq!(
        errno(f.getattr(v2)),
        libc::ESTALE,
        "an inode of the old version"
    );
    assert_eq!(errno(f.open(v5, libc::O_RDONLY)), libc::ESTALE);
    assert_eq!(
        errno(f.lookup(ad, OsStr::new("vol_0002.nii"))),
        libc::ESTALE
    );
    let ad = walk(&f, "a.nii.d");
    let v2_old = v2;
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    assert_ne!(v2, v2_old, "a new version gets new inodes");
    assert_eq!(
        f.getattr(v2).unwrap().attr.size,
        (352 + new_vol) as u64,
        "new volume size"
    );
    assert_eq!(
        errno(f.lookup(ad, OsStr::new("vol_0005.nii"))),
        libc::ENOENT,
        "volume 5 is gone"
    );
    assert!(
        !f.in_memory(Path::new("a.nii")),
        "the old version's cache is not the new one's"
    );
    assert_eq!(
        names(&list(&f, ad)),
        [
            ".",
            "..",
            "a.nii",
            "float32",
            "float64",
            "vol_0000.nii",
            "vol_0001.nii",
            "vol_0002.nii",
            "x",
            "y",
            "z"
        ]
    );
    assert_eq!(xattr(&f, ai, "user.nifti.shape"), "8,8,8,3");
    assert_eq!(
        f.lookup(ad, OsStr::new("vol_0002.nii")).unwrap().attr.ino,
        v2,
        "stable while unchanged"
    );
    let whole = expected_volume(&new, new_vol, 2);
    check_reads(&f, v2, &whole, "rewritten a.nii vol 2");
    assert_eq!(read_all(&f, v2), whole);
    assert!(f.in_memory(Path::new("a.nii")));
    assert_eq!(read_all(&f, ai), new, "the mirrored file too");

    // Replaced by rename, gzip this time.
    let (newer, _) = image(&[4, 5, 6, 4], 78, 0);
    let tmp = s.tmp.path().join("staging.nii.gz");
    fs::write(&tmp, gzip(&newer)).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    assert_eq!(errno(f.getattr(v2)), libc::ESTALE);
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    assert_eq!(f.getattr(v2).unwrap().attr.size, (352 + VOL) as u64);
    assert_eq!(read_all(&f, v2), expected_volume(&newer, VOL, 2));
    assert_eq!(
        read_all(&f, walk(&f, "a.nii.d/vol_0003.nii")),
        expected_volume(&newer, VOL, 3)
    );
}

#[test]
fn an_open_volume_keeps_reading_its_version_after_a_replace() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Unchanged);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let old_fh = f.open(v2, libc::O_RDONLY).unwrap().fh;
    assert_eq!(
        f.read(old_fh, 0, 100).unwrap(),
        expected_volume(&old, VOL, 2)[..100]
    );

    let (new, _) = image(&[4, 5, 6, 7], 99, 0);
    let tmp = s.tmp.path().join("staging.nii");
    fs::write(&tmp, &new).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    assert_eq!(
        errno(f.open(v2, libc::O_RDONLY)),
        libc::ESTALE,
        "the old inode"
    );
    // The open handle keeps its version's attributes (fstat).
    assert_eq!(
        f.getattr_open(v2, Some(old_fh)).unwrap().attr.size,
        (352 + VOL) as u64
    );
    let new_fh = f
        .open(walk(&f, "a.nii.d/vol_0002.nii"), libc::O_RDONLY)
        .unwrap()
        .fh;
    assert_eq!(
        f.read(new_fh, 0, 1 << 20).unwrap(),
        expected_volume(&new, VOL, 2)
    );
    assert_eq!(
        f.read(old_fh, 0, 1 << 20).unwrap(),
        expected_volume(&old, VOL, 2),
        "no mix of versions"
    );
    f.release(old_fh);
    f.release(new_fh);
}

#[test]
fn a_stale_handle_does_not_replace_the_current_cache() {
    let s = Src::new(standard_source);
    let f = s.fs(Mode::Fill);
    let (old, _) = image(&[4, 5, 6, 7], 1, 0);
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    let old_fh = f.open(v2, libc::O_RDONLY).unwrap().fh;
    assert_eq!(
        f.read(old_fh, 0, 1 << 20).unwrap(),
        expected_volume(&old, VOL, 2)
    );

    // Replaced by rename: the new version is read and cached.
    let (new, _) = image(&[4, 5, 6, 7], 99, 0);
    let tmp = s.tmp.path().join("staging.nii");
    fs::write(&tmp, &new).unwrap();
    fs::rename(&tmp, s.dir().join("a.nii")).unwrap();
    let v2 = walk(&f, "a.nii.d/vol_0002.nii");
    assert_eq!(read_all(&f, v2), expected_volume(&new, VOL, 2));
    assert!(f.in_memory(Path::new("a.nii")), "new version cached");

    // A reader still holding the old version gets the old bytes...
    assert_eq!(
        f.read(old_fh, 0, 1 << 20).unwrap(),
        expected_volume(&old, VOL, 2)
    );
    // ...but must not throw away the current version's cache to refill it from the old file.
    assert!(
        f.in_memory(Path::new("a.nii")),
        "a read through a handle on the replaced file dropped the cache of the current file"
    );
    f.release(old_fh);
}
