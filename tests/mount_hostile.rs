//! Hostile input: a corpus of malformed images, generated here byte by byte,
//! mounted all at once. For every entry: the listing works; either it has no
//! `.d` (and, for a regular file, reads back byte-identical through the mount)
//! or every volume nifuse offers reads exactly the right bytes (checked against
//! the source bytes) or fails with EIO/ENOENT. Every operation is bounded in
//! time (a hang is a failure), the daemon never exits, and a good image still
//! reads at the end. A second test checks that every bad file is logged once.
//!
//! The daemon runs under RLIMIT_AS (see `guard_memory`) so that a runaway
//! allocation aborts nifuse instead of waking the machine's OOM killer; an
//! abort is reported as the daemon exiting, which is a failure either way.

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// How long any single filesystem operation may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(10);

/// Volumes larger than this are probed with small preads instead of read whole.
const WHOLE_READ_MAX: u128 = 16 << 20;

// ---------------------------------------------------------------------------
// Building the corpus
// ---------------------------------------------------------------------------

fn put_i16(h: &mut [u8], at: usize, v: i16) {
    h[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_i32(h: &mut [u8], at: usize, v: i32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_f32(h: &mut [u8], at: usize, v: f32) {
    h[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A little-endian NIfTI-2 single file (`n+2`): `dims` (dim[0] = dims.len()),
/// datatype, bitpix, `vox_offset`, then `data` right after the 544-byte head.
fn nifti2(dims: &[i64], datatype: i16, bitpix: i16, vox_offset: i64, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 544];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&datatype.to_le_bytes());
    h[14..16].copy_from_slice(&bitpix.to_le_bytes());
    h[16..24].copy_from_slice(&(dims.len() as i64).to_le_bytes());
    for i in 0..7 {
        let d = dims.get(i).copied().unwrap_or(1);
        h[24 + 8 * i..32 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1f64.to_le_bytes());
    }
    h[168..176].copy_from_slice(&vox_offset.to_le_bytes());
    h[176..184].copy_from_slice(&1f64.to_le_bytes());
    h[240..252].copy_from_slice(b"nifuse tests");
    h.extend_from_slice(data);
    h
}

/// What nifuse may do with an entry.
enum Expect {
    /// A valid image: it must have a `.d` and every volume must read right.
    Split(Model),
    /// Doubtful input: no `.d` (then the file reads back identical), or a `.d`
    /// whose volumes follow `Model` (right bytes, or EIO/ENOENT).
    Either(Model),
    /// Not an image nifuse can split: no `.d`, reads back identical.
    Plain,
    /// A non-regular entry (FIFO, directory, symlink): no `.d`; symlinks keep their target.
    Special,
}

/// What the volumes of an image must hold, computed independently of nifuse.
#[derive(Clone)]
struct Model {
    nifti2: bool,
    /// Offset of voxel data in the decoded data stream.
    voxoff: u128,
    vol_bytes: u128,
    n_vols: u128,
    /// The decoded data stream (the file itself, the `.img`, or the gunzipped bytes).
    decoded: Vec<u8>,
    /// `decoded` is exactly what is there: a volume entirely inside it must read
    /// normally (SPEC 6). False for damaged gzip: EIO is then always allowed.
    exact: bool,
}

impl Model {
    fn new(nifti2: bool, voxoff: u128, vol_bytes: u128, n_vols: u128, decoded: Vec<u8>, exact: bool) -> Model {
        Model { nifti2, voxoff, vol_bytes, n_vols, decoded, exact }
    }
    /// The volume-number width of the `vol_K.nii` names.
    fn width(&self) -> usize {
        (self.n_vols.saturating_sub(1)).to_string().len().max(4)
    }
    /// The decoded bytes `from..from+len` of the data stream, if all present.
    fn bytes(&self, from: u128, len: u128) -> Option<&[u8]> {
        let end = from.checked_add(len)?;
        if end > self.decoded.len() as u128 {
            return None;
        }
        Some(&self.decoded[from as usize..end as usize])
    }
}

struct Case {
    /// Path relative to SOURCE; its stem is unique in the corpus, so it can be
    /// looked for in the log.
    name: String,
    expect: Expect,
    /// Whether the daemon log must name it (bad files).
    logged: bool,
    /// Reading it may kill or hang a careless daemon: checked last.
    dangerous: bool,
}

fn case(name: &str, expect: Expect, logged: bool) -> Case {
    Case { name: name.into(), expect, logged, dangerous: false }
}

const NX: i16 = 4;
const NT: i16 = 6;
const VOL: usize = (NX as usize).pow(3) * 2;

/// Writes the corpus under `src` (and a sibling `outside/` directory) and
/// returns what is expected of each entry.
fn build_corpus(src: &Path, bombs: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let w = |name: &str, bytes: &[u8]| fs::write(src.join(name), bytes).unwrap();
    let (img, _) = image4d(NX, NX, NX, NT, 40);
    let int16 = |decoded: Vec<u8>, voxoff: u128| Model::new(false, voxoff, VOL as u128, NT as u128, decoded, true);

    // Valid images, as controls and as the gzip-by-magic cases.
    w("v01_good.nii", &img);
    cases.push(case("v01_good.nii", Expect::Split(int16(img.clone(), 352)), false));
    w("v02_fake_gz.nii.gz", &img);
    cases.push(case("v02_fake_gz.nii.gz", Expect::Split(int16(img.clone(), 352)), false));
    w("v03_real_gz.nii", &gzip(&img));
    cases.push(case("v03_real_gz.nii", Expect::Split(int16(img.clone(), 352)), false));

    // Huge dimensions. NIfTI-1 with i16::MAX in every dim (voxel count overflows
    // u64 when multiplied by the volume count).
    let huge_dims = [i16::MAX; 7];
    let huge = nifti1(&huge_dims, 4, 16, 0, &bytes(1000, 41));
    let m = |d: Vec<u8>, exact| {
        let e = i16::MAX as u128;
        Model::new(false, 352, e * e * e * 2, e * e * e * e, d, exact)
    };
    w("m01_huge_i16.nii", &huge);
    cases.push(case("m01_huge_i16.nii", Expect::Either(m(huge.clone(), true)), true));
    w("m02_huge_i16_gz.nii.gz", &gzip(&huge));
    cases.push(case("m02_huge_i16_gz.nii.gz", Expect::Either(m(huge.clone(), true)), true));
    // One 70 TB volume (3D, i16::MAX cubed, int16) in a 1.3 kB file.
    let huge3 = nifti1(&[i16::MAX; 3], 4, 16, 0, &bytes(1000, 42));
    let e = i16::MAX as u128;
    let m3 = |d: Vec<u8>| Model::new(false, 352, e * e * e * 2, 1, d, true);
    w("m03_huge3d.nii", &huge3);
    cases.push(case("m03_huge3d.nii", Expect::Either(m3(huge3.clone())), true));
    w("m04_huge3d_gz.nii.gz", &gzip(&huge3));
    cases.push(Case { dangerous: true, ..case("m04_huge3d_gz.nii.gz", Expect::Either(m3(huge3.clone())), true) });
    // NIfTI-2 dims near i64::MAX: one volume of 2^60 bytes (uint8; 2^63-1
    // would overflow the bit count and is covered by m07).
    let n2vol = nifti2(&[1 << 60, 1, 1], 2, 8, 544, &bytes(1000, 43));
    let mv = |d: Vec<u8>| Model::new(true, 544, 1 << 60, 1, d, true);
    w("m05_n2_huge_vol.nii", &n2vol);
    cases.push(case("m05_n2_huge_vol.nii", Expect::Either(mv(n2vol.clone())), true));
    w("m06_n2_huge_vol_gz.nii.gz", &gzip(&n2vol));
    cases.push(Case { dangerous: true, ..case("m06_n2_huge_vol_gz.nii.gz", Expect::Either(mv(n2vol.clone())), true) });
    // NIfTI-2: sizes whose product overflows.
    let n2o = nifti2(&[i64::MAX, i64::MAX, 2, 2], 2, 8, 544, &bytes(100, 44));
    w("m07_n2_overflow.nii", &n2o);
    cases.push(case(
        "m07_n2_overflow.nii",
        Expect::Either(Model::new(true, 544, (i64::MAX as u128) * (i64::MAX as u128) * 2, 2, n2o.clone(), true)),
        true,
    ));
    // Volume counts in the quintillions with 1-byte volumes: 100 of them are
    // really there and must read right; listing the .d must not hang the daemon.
    let many1 = nifti1(&[1, 1, 1, i16::MAX, i16::MAX, i16::MAX, i16::MAX], 2, 8, 0, &bytes(100, 45));
    w("m08_i16_many_vols.nii", &many1);
    cases.push(Case {
        dangerous: true,
        ..case("m08_i16_many_vols.nii", Expect::Either(Model::new(false, 352, 1, e * e * e * e, many1.clone(), true)), true)
    });
    let many2 = nifti2(&[1, 1, 1, i64::MAX], 2, 8, 544, &bytes(100, 46));
    w("m09_n2_many_vols.nii", &many2);
    cases.push(Case {
        dangerous: true,
        ..case("m09_n2_many_vols.nii", Expect::Either(Model::new(true, 544, 1, i64::MAX as u128, many2.clone(), true)), true)
    });

    // Negative dims, dim[0] out of range.
    let neg = nifti1(&[4, -4, 4, 6], 4, 16, 0, &bytes(VOL * 6, 47));
    w("p01_neg_dim.nii", &neg);
    cases.push(case("p01_neg_dim.nii", Expect::Plain, true));
    let n2neg = nifti2(&[4, 4, 4, -1], 4, 16, 544, &bytes(VOL, 48));
    w("p02_n2_neg_dim.nii", &n2neg);
    cases.push(case("p02_n2_neg_dim.nii", Expect::Plain, true));
    for (name, d0) in [("p03_dim0_zero.nii", 0i16), ("p04_dim0_eight.nii", 8), ("p05_dim0_neg.nii", -1)] {
        let mut h = img.clone();
        put_i16(&mut h, 40, d0);
        w(name, &h);
        cases.push(case(name, Expect::Plain, true));
    }

    // vox_offset: past EOF, NaN, infinite, negative, fractional, huge, inside the
    // header, and pointing into the middle of the data.
    let with_voxoff = |v: f32| {
        let mut h = img.clone();
        put_f32(&mut h, 108, v);
        h
    };
    w("m10_voxoff_past_eof.nii", &with_voxoff(4096.0));
    cases.push(case("m10_voxoff_past_eof.nii", Expect::Either(int16(with_voxoff(4096.0), 4096)), true));
    for (name, v) in [
        ("p06_voxoff_nan.nii", f32::NAN),
        ("p07_voxoff_inf.nii", f32::INFINITY),
        ("p08_voxoff_neg.nii", -352.0),
        ("p09_voxoff_1e30.nii", 1e30),
    ] {
        w(name, &with_voxoff(v));
        cases.push(case(name, Expect::Plain, true));
    }
    // nibabel takes int(vox_offset): 352.5 means 352 if nifuse accepts it at all.
    w("m11_voxoff_frac.nii", &with_voxoff(352.5));
    cases.push(case("m11_voxoff_frac.nii", Expect::Either(int16(with_voxoff(352.5), 352)), true));
    w("m12_voxoff_small.nii", &with_voxoff(96.0));
    cases.push(case("m12_voxoff_small.nii", Expect::Either(int16(with_voxoff(96.0), 96)), true));
    // 1.5 volumes in: volumes 0..=3 are whole and must read, 4 and 5 run past EOF.
    let mid = (352 + VOL * 3 / 2) as f32;
    w("m13_voxoff_middle.nii", &with_voxoff(mid));
    cases.push(case("m13_voxoff_middle.nii", Expect::Either(int16(with_voxoff(mid), mid as u128)), true));
    let mut n2negoff = nifti2(&[4, 4, 4, 6], 4, 16, -544, &bytes(VOL * 6, 49));
    w("p10_n2_voxoff_neg.nii", &n2negoff);
    cases.push(case("p10_n2_voxoff_neg.nii", Expect::Plain, true));
    n2negoff[168..176].copy_from_slice(&i64::MAX.to_le_bytes());
    w("p11_n2_voxoff_max.nii", &n2negoff);
    cases.push(case("p11_n2_voxoff_max.nii", Expect::Plain, true));

    // Datatype and bitpix.
    let mut unk = img.clone();
    put_i16(&mut unk, 70, 77);
    w("p12_unknown_dtype.nii", &unk);
    cases.push(case("p12_unknown_dtype.nii", Expect::Plain, true));
    let mut bp = img.clone();
    put_i16(&mut bp, 72, 32);
    w("m14_bitpix_mismatch.nii", &bp);
    // nibabel sizes voxels by the datatype (int16), not bitpix.
    cases.push(case("m14_bitpix_mismatch.nii", Expect::Either(int16(bp.clone(), 352)), true));

    // sizeof_hdr wrong, short headers, empty files.
    for (name, v) in [("p13_sizeof_349.nii", 349), ("p14_sizeof_zero.nii", 0), ("p15_sizeof_neg.nii", -348)] {
        let mut h = img.clone();
        put_i32(&mut h, 0, v);
        w(name, &h);
        cases.push(case(name, Expect::Plain, true));
    }
    for (name, n) in [("p16_short0.nii", 0), ("p17_short1.nii", 1), ("p18_short347.nii", 347)] {
        w(name, &img[..n]);
        cases.push(case(name, Expect::Plain, true));
    }
    // 351 bytes: a whole header, the extender cut short, no voxels.
    w("m15_short351.nii", &img[..351]);
    cases.push(case("m15_short351.nii", Expect::Either(int16(img[..351].to_vec(), 352)), true));
    w("p19_short347_gz.nii.gz", &gzip(&img[..347]));
    cases.push(case("p19_short347_gz.nii.gz", Expect::Plain, true));
    w("p20_empty_gz.nii.gz", b"");
    cases.push(case("p20_empty_gz.nii.gz", Expect::Plain, true));
    w("p21_empty_gzip_stream.nii.gz", &gzip(b""));
    cases.push(case("p21_empty_gzip_stream.nii.gz", Expect::Plain, true));

    // Extensions with nonsense sizes.
    for (name, esize) in [("m16_ext_zero.nii", 0i32), ("m17_ext_huge.nii", i32::MAX), ("m18_ext_neg.nii", -16)] {
        let mut h = img[..352].to_vec();
        h[348] = 1;
        let mut ext = vec![0u8; 16];
        put_i32(&mut ext, 0, esize);
        put_i32(&mut ext, 4, 6);
        ext[8..16].copy_from_slice(b"comment!");
        h.extend_from_slice(&ext);
        put_f32(&mut h, 108, 368.0);
        h.extend_from_slice(&img[352..]);
        w(name, &h);
        cases.push(case(name, Expect::Either(int16(h.clone(), 368)), true));
    }

    // Damaged gzip: truncated stream; corrupted bytes; gzip magic then garbage.
    let (big, _) = image4d(16, 16, 16, 10, 50);
    let gz = gzip(&big);
    let big_model = |exact| Model::new(false, 352, 16 * 16 * 16 * 2, 10, big.clone(), exact);
    w("m19_trunc_gz.nii.gz", &gz[..gz.len() * 55 / 100]);
    cases.push(case("m19_trunc_gz.nii.gz", Expect::Either(big_model(false)), true));
    let smooth: Vec<u8> = {
        let mut d = Vec::new();
        for i in 0..(16 * 16 * 16 * 10) {
            d.extend_from_slice(&(((i % 61) * 7 + i / 4096) as i16).to_le_bytes());
        }
        nifti1(&[16, 16, 16, 10], 4, 16, 0, &d)
    };
    let mut bad = gzip(&smooth);
    let at = bad.len() / 2;
    bad[at..at + 24].fill(0xa5);
    w("m20_corrupt_gz.nii.gz", &bad);
    cases.push(case(
        "m20_corrupt_gz.nii.gz",
        Expect::Either(Model::new(false, 352, 16 * 16 * 16 * 2, 10, smooth.clone(), false)),
        true,
    ));
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend(bytes(2000, 51));
    w("p22_gz_magic_garbage.nii.gz", &garbage);
    cases.push(case("p22_gz_magic_garbage.nii.gz", Expect::Plain, true));

    // Analyze-style pairs: a .hdr without .img; an .img without .hdr; a valid
    // .hdr whose .img is empty.
    let mut pair_hdr = img[..348].to_vec();
    pair_hdr[344..348].copy_from_slice(b"ni1\0");
    put_f32(&mut pair_hdr, 108, 0.0);
    w("p23_lonely.hdr", &pair_hdr);
    cases.push(case("p23_lonely.hdr", Expect::Plain, true));
    w("o01_orphan.img", &img[352..]);
    cases.push(case("o01_orphan.img", Expect::Plain, false));
    w("m21_emptyimg.hdr", &pair_hdr);
    w("m21_emptyimg.img", b"");
    cases.push(case("m21_emptyimg.hdr", Expect::Either(int16(Vec::new(), 0)), true));
    cases.push(case("m21_emptyimg.img", Expect::Plain, false));

    // Non-regular entries with NIfTI names.
    let fifo = std::ffi::CString::new(src.join("s01_fifo.nii").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    cases.push(case("s01_fifo.nii", Expect::Special, true));
    fs::create_dir(src.join("s02_dir.nii")).unwrap();
    fs::write(src.join("s02_dir.nii/inner.txt"), b"inside").unwrap();
    cases.push(case("s02_dir.nii", Expect::Special, false));
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    link("s03_loop_b.nii", "s03_loop_a.nii");
    link("s03_loop_a.nii", "s03_loop_b.nii");
    link("s04_self.nii", "s04_self.nii");
    let outside = src.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("real.nii"), &img).unwrap();
    link(outside.join("real.nii").to_str().unwrap(), "s05_outside_abs.nii");
    link("../outside/real.nii", "s06_outside_rel.nii");
    link("nowhere/missing.nii", "s07_dangling.nii");
    link("s01_fifo.nii", "s08_link_to_fifo.nii");
    link("s02_dir.nii", "s09_link_to_dir.nii");
    for name in [
        "s03_loop_a.nii",
        "s03_loop_b.nii",
        "s04_self.nii",
        "s05_outside_abs.nii",
        "s06_outside_rel.nii",
        "s07_dangling.nii",
        "s08_link_to_fifo.nii",
    ] {
        cases.push(case(name, Expect::Special, true));
    }
    cases.push(case("s09_link_to_dir.nii", Expect::Special, false));
    if !bombs {
        for c in cases.iter().filter(|c| c.dangerous) {
            fs::remove_file(src.join(&c.name)).unwrap();
        }
        cases.retain(|c| !c.dangerous);
    }
    cases
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

/// Runs `f` on another thread; `None` if it did not finish within `LIMIT`.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).ok()
}

/// Limits the daemon's address space, so that a runaway allocation makes it
/// abort (a test failure) rather than exhaust the shared machine's memory.
fn guard_memory(pid: u32) {
    let lim = libc::rlimit { rlim_cur: 3 << 30, rlim_max: 3 << 30 };
    // SAFETY: prlimit on a child we own, with a valid rlimit.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_AS, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// What happened to the corpus: failures, and operations that hung.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    hangs: usize,
}

impl Report {
    fn fail(&mut self, name: &str, msg: impl AsRef<str>) {
        self.failures.push(format!("{name}: {}", msg.as_ref()));
    }
    /// Runs a bounded operation, recording a hang.
    fn op<T: Send + 'static>(&mut self, name: &str, what: &str, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let r = bounded(f);
        if r.is_none() {
            self.hangs += 1;
            self.fail(name, format!("{what}: no answer within {LIMIT:?} (hang)"));
        }
        r
    }
}

fn errno_ok(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::ENOENT))
}

/// Checks one volume `k` of `model` at `path`, reporting into `r`.
fn check_volume(r: &mut Report, name: &str, path: PathBuf, model: &Model, k: u128, must_read: bool) {
    let label = format!("{}/{}", name, path.file_name().unwrap().to_string_lossy());
    let p = path.clone();
    let Some(meta) = r.op(&label, "stat", move || fs::metadata(&p)) else { return };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if errno_ok(&e) && !must_read => return,
        Err(e) => return r.fail(&label, format!("stat: {e}")),
    };
    let size = meta.len() as u128;
    let hdr_min: u128 = if model.nifti2 { 544 } else { 352 };
    if size < hdr_min + model.vol_bytes {
        return r.fail(&label, format!("stat size {size} < header {hdr_min} + volume {}", model.vol_bytes));
    }
    let hdr_len = size - model.vol_bytes;
    if hdr_len % 16 != 0 || hdr_len > (64 << 20) + 1024 {
        return r.fail(&label, format!("volume header length {hdr_len} (size {size}) is not sane"));
    }
    let start = model.voxoff + k * model.vol_bytes;
    if model.vol_bytes <= WHOLE_READ_MAX {
        let p = path.clone();
        let Some(res) = r.op(&label, "read", move || fs::read(&p)) else { return };
        match res {
            Ok(v) => {
                if v.len() as u128 != size {
                    return r.fail(&label, format!("read {} bytes, stat says {size}", v.len()));
                }
                check_vol_header(r, &label, &v, model.nifti2);
                match model.bytes(start, model.vol_bytes) {
                    Some(want) if &v[hdr_len as usize..] == want => {}
                    Some(_) => r.fail(&label, "WRONG voxel bytes served"),
                    None => r.fail(&label, format!(
                        "served {} voxel bytes at stream offset {start} that the source does not have (only {} bytes)",
                        model.vol_bytes, model.decoded.len()
                    )),
                }
            }
            Err(e) if errno_ok(&e) => {
                if must_read || (model.exact && model.bytes(start, model.vol_bytes).is_some()) {
                    r.fail(&label, format!("all its bytes are present, yet reading it failed: {e}"));
                }
            }
            Err(e) => r.fail(&label, format!("read failed with {e}, not EIO/ENOENT")),
        }
        return;
    }
    // A huge volume: the header, then small preads at the start and end of the data.
    for (off, len) in [(0u128, hdr_len.min(4096)), (hdr_len, 4096), (size - 4096, 4096)] {
        let p = path.clone();
        let Some(res) = r.op(&label, "pread", move || {
            let f = fs::File::open(&p)?;
            let mut buf = vec![0u8; len as usize];
            let n = f.read_at(&mut buf, off as u64)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>(buf)
        }) else {
            return;
        };
        match res {
            Ok(buf) if off == 0 => check_vol_header(r, &label, &buf, model.nifti2),
            Ok(buf) => {
                let from = start + (off - hdr_len);
                match model.bytes(from, len) {
                    Some(want) if buf == want => {}
                    Some(_) => r.fail(&label, format!("WRONG bytes at volume offset {off}")),
                    None => r.fail(&label, format!(
                        "pread at {off} served {} bytes the source does not have (stream offset {from}, source {} bytes)",
                        buf.len(), model.decoded.len()
                    )),
                }
            }
            // Even the header may fail: the kernel reads whole pages (and reads
            // ahead), and SPEC 6 lets a volume with missing bytes fail as a whole.
            Err(e) if errno_ok(&e) => {}
            Err(e) => r.fail(&label, format!("pread at {off} failed with {e}, not EIO/ENOENT")),
        }
    }
}

fn check_vol_header(r: &mut Report, label: &str, v: &[u8], nifti2: bool) {
    let ok = if nifti2 {
        v.len() >= 544 && &v[4..8] == b"n+2\0" && i64::from_le_bytes(v[16..24].try_into().unwrap()) == 3
    } else {
        v.len() >= 352 && &v[344..348] == b"n+1\0" && i16::from_le_bytes([v[40], v[41]]) == 3
    };
    if !ok {
        r.fail(label, "volume header is not a 3D single-file header of the source's format");
    }
}

/// Checks one corpus entry.
fn check_case(r: &mut Report, m: &Mount, listing: &[String], c: &Case) {
    let name = c.name.as_str();
    let file_name = Path::new(name).file_name().unwrap().to_string_lossy().into_owned();
    if !listing.contains(&file_name) {
        return r.fail(name, "not listed");
    }
    let has_d = listing.contains(&format!("{file_name}.d"));
    let src = m.src.join(name);
    let mnt = m.path(name);
    let smeta = fs::symlink_metadata(&src).unwrap();
    let p = mnt.clone();
    let Some(mmeta) = r.op(name, "lstat", move || fs::symlink_metadata(&p)) else { return };
    let mmeta = match mmeta {
        Ok(mm) => mm,
        Err(e) => return r.fail(name, format!("lstat through the mount: {e}")),
    };
    if mmeta.file_type() != smeta.file_type() {
        r.fail(name, format!("type {:?} in the mount, {:?} in SOURCE", mmeta.file_type(), smeta.file_type()));
    }
    if smeta.file_type().is_symlink() {
        let p = mnt.clone();
        match r.op(name, "readlink", move || fs::read_link(&p)) {
            Some(Ok(t)) if t == fs::read_link(&src).unwrap() => {}
            Some(other) => r.fail(name, format!("readlink gave {other:?}")),
            None => {}
        }
    }
    let model = match &c.expect {
        Expect::Split(model) => {
            if !has_d {
                return r.fail(name, "a valid image has no .d");
            }
            Some((model, true))
        }
        Expect::Either(model) if has_d => Some((model, false)),
        Expect::Special | Expect::Plain | Expect::Either(_) => {
            if has_d {
                return r.fail(name, "has a .d but must not");
            }
            None
        }
    };
    let Some((model, must)) = model else {
        // No .d: a regular file reads back byte for byte.
        if smeta.file_type().is_file() {
            let want = fs::read(&src).unwrap();
            let p = mnt.clone();
            match r.op(name, "read", move || fs::read(&p)) {
                Some(Ok(got)) if got == want => {}
                Some(Ok(got)) => r.fail(name, format!("reads back {} bytes, differing from the source's {}", got.len(), want.len())),
                Some(Err(e)) => r.fail(name, format!("reading the plain file failed: {e}")),
                None => {}
            }
        }
        return;
    };
    // A .d: list a bounded number of its names (never the whole directory),
    // then read those, the last volume and a few more.
    let dir = m.path(format!("{name}.d"));
    let d = dir.clone();
    let Some(first) = r.op(name, "listing the .d", move || {
        fs::read_dir(&d).map(|it| it.take(16).filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
    }) else {
        return;
    };
    let first = match first {
        Ok(f) => f,
        Err(e) => return r.fail(name, format!("listing the .d: {e}")),
    };
    let width = model.width();
    let mut ks: Vec<u128> = Vec::new();
    for n in &first {
        let digits = n.strip_prefix("vol_").and_then(|s| s.strip_suffix(".nii"));
        match digits.and_then(|d| d.parse::<u128>().ok().filter(|_| d.len() == width)) {
            Some(k) if k < model.n_vols => ks.push(k),
            _ => r.fail(name, format!("unexpected name {n:?} in the .d (volumes: {}, width {width})", model.n_vols)),
        }
    }
    if first.is_empty() {
        r.fail(name, "empty .d");
    }
    let n = model.n_vols;
    ks.extend([n - 1, n / 2, n.saturating_sub(2), (n / 3).min(99)]);
    ks.sort_unstable();
    ks.dedup();
    for k in ks {
        let vol = dir.join(format!("vol_{k:0width$}.nii"));
        let must_read = must && k < n;
        check_volume(r, name, vol, model, k, must_read);
        if r.hangs >= 2 {
            return;
        }
    }
}

fn mount_corpus(bombs: bool) -> (Mount, Vec<Case>) {
    let mut cases = Vec::new();
    let m = Mount::source(|src| cases = build_corpus(src, bombs)).start(&[]);
    guard_memory(m.pid());
    (m, cases)
}

/// The names at the mount's root, or an empty list (and a failure) if listing hangs or fails.
fn list_root(r: &mut Report, m: &Mount) -> Vec<String> {
    let root = m.mnt.clone();
    let res = r.op("/", "listing the mount root", move || {
        fs::read_dir(&root).and_then(|it| it.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect::<Result<Vec<_>, _>>())
    });
    match res {
        Some(Ok(mut l)) => {
            l.sort();
            l
        }
        Some(Err(e)) => {
            r.fail("/", format!("listing the mount root: {e}"));
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn daemon_alive(m: &mut Mount) -> bool {
    matches!(m.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
}

/// Mounts the corpus and checks every entry; returns the problems found.
fn run_corpus(bombs: bool) {
    let (mut m, mut cases) = mount_corpus(bombs);
    cases.sort_by_key(|c| c.dangerous);
    let mut r = Report::default();
    let listing = list_root(&mut r, &m);
    let mut died_at = None;
    if !listing.is_empty() {
        for c in &cases {
            if r.hangs >= 2 {
                r.fail(&c.name, "skipped: the daemon stopped answering earlier");
                continue;
            }
            check_case(&mut r, &m, &listing, c);
            if died_at.is_none() && !daemon_alive(&mut m) {
                died_at = Some(c.name.clone());
                r.fail(&c.name, "THE DAEMON EXITED while this entry was checked");
            }
        }
    }
    // Still serving: a good image reads right at the end.
    let (img, _) = image4d(NX, NX, NX, NT, 40);
    let p = m.path("v01_good.nii.d/vol_0005.nii");
    match bounded(move || fs::read(&p)) {
        Some(Ok(v)) if v[352..] == img[352 + 5 * VOL..] => {}
        other => r.fail("final read", format!("v01_good.nii.d/vol_0005.nii after the corpus: {:?}", other.map(|x| x.map(|v| v.len())))),
    }
    if !daemon_alive(&mut m) {
        r.fail("daemon", format!("exited (first noticed after {died_at:?})"));
    }
    let mut tail = m.log();
    if tail.len() > 6000 {
        tail = tail[tail.len() - 6000..].to_string();
    }
    assert!(
        r.failures.is_empty(),
        "{} problems with the malformed corpus:\n  {}\n--- daemon log (tail) ---\n{tail}",
        r.failures.len(),
        r.failures.join("\n  ")
    );
}

/// The whole corpus in one mount, resource bombs included (checked last).
#[test]
fn malformed_corpus_every_read_is_right_or_eio_and_the_daemon_survives() {
    run_corpus(true);
}

/// The same without the four resource bombs (huge volume counts, huge
/// compressed volumes), which have tests of their own below: so that one
/// daemon-killing input does not hide what the rest of the corpus does.
#[test]
fn malformed_corpus_without_resource_bombs() {
    run_corpus(false);
}

/// Lists and stats the corpus three times, then returns the daemon log and
/// the final root listing.
fn log_after_listing(m: &mut Mount, cases: &[Case]) -> (String, Vec<String>) {
    for _ in 0..3 {
        let root = m.mnt.clone();
        let listed = bounded(move || names(&root)).expect("listing the mount hung");
        assert!(listed.len() >= cases.len(), "{listed:?}");
        for c in cases {
            let p = m.path(&c.name);
            let _ = bounded(move || fs::symlink_metadata(&p));
            let p = m.path(format!("{}.d", c.name));
            let _ = bounded(move || fs::symlink_metadata(&p));
        }
        std::thread::sleep(Duration::from_millis(1100)); // past the attribute TTL and the registry's recheck
    }
    assert!(daemon_alive(m), "daemon exited: {}", m.log());
    (m.log(), names(&m.mnt))
}

/// Problems with the log lines of the `logged` cases chosen by `pick`.
fn logging_problems(log: &str, listing: &[String], cases: &[Case], pick: impl Fn(&Case) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for c in cases.iter().filter(|c| c.logged && pick(c)) {
        let stem = c.name.split('.').next().unwrap();
        let fname = Path::new(&c.name).file_name().unwrap().to_string_lossy().into_owned();
        if listing.contains(&format!("{fname}.d")) {
            continue; // shown as an image: its read errors are checked elsewhere
        }
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(stem)).collect();
        match lines.len() {
            0 => problems.push(format!("{}: no .d, yet no log line says why", c.name)),
            1 => {}
            n => problems.push(format!("{}: logged {n} times, not once:\n      {}", c.name, lines.join("\n      "))),
        }
    }
    problems
}

/// SPEC 2: a file that cannot be parsed as an image is shown as a plain file
/// and logged once with the reason.
#[test]
fn every_bad_image_file_is_logged_once_with_its_name() {
    // Without the resource bombs: listing a directory holding one hangs today
    // (see the tests below), which would hide every logging result.
    let (mut m, cases) = mount_corpus(false);
    let (log, listing) = log_after_listing(&mut m, &cases);
    let problems = logging_problems(&log, &listing, &cases, |c| !matches!(c.expect, Expect::Special));
    assert!(problems.is_empty(), "{} logging problems:\n  {}\n--- daemon log ---\n{log}", problems.len(), problems.join("\n  "));
}

/// NIfTI-named entries that are not served as images although their name says
/// so (a FIFO, symlink loops, dangling symlinks, symlinks out of SOURCE): a
/// user sees `x.nii` without `x.nii.d`, so one log line must say why.
#[test]
fn nifti_named_fifos_and_unfollowed_symlinks_are_logged_once() {
    let (mut m, cases) = mount_corpus(false);
    let (log, listing) = log_after_listing(&mut m, &cases);
    let fifo = fs::symlink_metadata(m.path("s01_fifo.nii")).unwrap();
    assert!(fifo.file_type().is_fifo(), "a FIFO stays a FIFO");
    assert_eq!(fs::symlink_metadata(m.path("s02_dir.nii")).unwrap().mode() & 0o170000, 0o040000);
    let problems = logging_problems(&log, &listing, &cases, |c| matches!(c.expect, Expect::Special));
    assert!(problems.is_empty(), "{} logging problems:\n  {}\n--- daemon log ---\n{log}", problems.len(), problems.join("\n  "));
}

#[test]
fn a_directory_of_quintillions_of_volumes_does_not_hang_or_kill_the_daemon() {
    // dim = [7, 1, 1, 1, 32767, 32767, 32767, 32767], uint8: 1.15e18 one-byte
    // volumes, 100 of them present. Listing its .d (the first page only) must
    // answer promptly, and the daemon must keep serving.
    let mut m = Mount::mount(|src| {
        let many = nifti1(&[1, 1, 1, i16::MAX, i16::MAX, i16::MAX, i16::MAX], 2, 8, 0, &bytes(100, 45));
        fs::write(src.join("many.nii"), many).unwrap();
        fs::write(src.join("good.nii"), image4d(NX, NX, NX, NT, 40).0).unwrap();
    });
    guard_memory(m.pid());
    let root = m.mnt.clone();
    let listing = bounded(move || names(&root));
    assert!(
        listing.is_some(),
        "listing the directory that holds many.nii did not answer within {LIMIT:?}; daemon alive: {}\n{}",
        daemon_alive(&mut m),
        m.log()
    );
    if listing.unwrap().contains(&"many.nii.d".to_string()) {
        let d = m.path("many.nii.d");
        let first = bounded(move || fs::read_dir(&d).map(|it| it.take(3).filter_map(|e| e.ok()).count()));
        assert!(
            matches!(first, Some(Ok(3))),
            "opening many.nii.d for listing did not answer within {LIMIT:?} ({first:?}); daemon alive: {}",
            daemon_alive(&mut m)
        );
        let v = m.path("many.nii.d/vol_0000000000000000099.nii");
        let got = bounded(move || fs::read(&v)).expect("reading volume 99 hung").expect("volume 99 is present");
        assert_eq!(got[got.len() - 1], bytes(100, 45)[99]);
    }
    let p = m.path("good.nii.d/vol_0000.nii");
    let good = bounded(move || fs::read(&p));
    assert!(matches!(good, Some(Ok(_))), "a good image no longer reads: {good:?}");
    assert!(daemon_alive(&mut m), "daemon exited: {}", m.log());
}

#[test]
fn reading_a_huge_volume_of_a_compressed_image_gives_eio_not_a_crash() {
    // A 1.3 kB .nii.gz whose header claims one 70 TB volume (and a NIfTI-2 one
    // of 2^60 bytes): reading must fail with EIO (the bytes are not there),
    // never abort the daemon by allocating the whole volume.
    let mut m = Mount::mount(|src| {
        fs::write(src.join("huge3d.nii.gz"), gzip(&nifti1(&[i16::MAX; 3], 4, 16, 0, &bytes(1000, 42)))).unwrap();
        fs::write(src.join("n2huge.nii.gz"), gzip(&nifti2(&[1 << 60, 1, 1], 2, 8, 544, &bytes(1000, 43)))).unwrap();
        fs::write(src.join("good.nii"), image4d(NX, NX, NX, NT, 40).0).unwrap();
    });
    guard_memory(m.pid());
    let mut problems = Vec::new();
    for name in ["huge3d.nii.gz", "n2huge.nii.gz"] {
        let root = m.mnt.clone();
        if !bounded(move || names(&root)).expect("listing hung").contains(&format!("{name}.d")) {
            continue;
        }
        let p = m.path(format!("{name}.d/vol_0000.nii"));
        let res = bounded(move || {
            let f = fs::File::open(&p)?;
            let mut buf = vec![0u8; 4096];
            f.read_at(&mut buf, 1024)
        });
        match res {
            Some(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {}
            other => problems.push(format!("{name}: pread of vol_0000 at 1024: {other:?} (want EIO)")),
        }
        if !daemon_alive(&mut m) {
            problems.push(format!("{name}: the daemon exited reading it"));
            break;
        }
    }
    let p = m.path("good.nii.d/vol_0000.nii");
    if !matches!(bounded(move || fs::read(&p)), Some(Ok(_))) {
        problems.push("good.nii no longer reads".into());
    }
    let mut tail = m.log();
    if tail.len() > 3000 {
        tail = tail[tail.len() - 3000..].to_string();
    }
    assert!(problems.is_empty(), "{problems:#?}\n--- daemon log (tail) ---\n{tail}");
}
