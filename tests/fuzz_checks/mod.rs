//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`, which
//! include this file with `#[path]`) and by `tests/fuzz_regressions.rs`, which
//! replays saved crash inputs through the very same functions.
//!
//! Every `check_*` function takes the raw fuzz input (`&[u8]`) and panics (via
//! `assert!`) when an invariant breaks; it must never panic otherwise. Inputs are
//! decoded with `Input`, which reads numbers from the front and yields zeros
//! once the bytes run out, so that every byte string is a valid input.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nifuse::gzindex::{GzAccess, GzError, IndexKey, IndexState};
use nifuse::nifti::{
    DataType, ECODE_AFNI, Field, FieldTable, FormatError, Header, INTENT_TIME_SERIES, ImageLayout,
    Kind, MAX_VOX_OFFSET, NIFTI1, NIFTI2, Version, datatype, parse_extensions,
};

// ---------------------------------------------------------------------------
// Input decoding

/// Reads fixed-size numbers off the front of the fuzz input; zeros past the end.
pub struct Input<'a> {
    pub b: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Input { b }
    }
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.b.len());
        out[..n].copy_from_slice(&self.b[..n]);
        self.b = &self.b[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
}

/// A tiny deterministic PRNG (xorshift64*), for read patterns derived from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (0 if `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

// ---------------------------------------------------------------------------
// Target 1: header — arbitrary bytes as a `.nii` start and as a `.hdr`.

pub fn check_header(data: &[u8]) {
    for pair in [false, true] {
        if let Some(layout) = check_layout_new(data, pair) {
            // A few reads of every kind of place in a volume file.
            let fsz = layout.vol_file_size();
            let h = layout.vol_header().len() as u64;
            for k in [0, layout.n_vols() - 1, layout.n_vols(), u64::MAX] {
                for (off, size) in [
                    (0, u32::MAX),
                    (0, 1),
                    (h.saturating_sub(3), 7),
                    (h, 4096),
                    (fsz.saturating_sub(1), 2),
                    (fsz, 1),
                    (u64::MAX, u32::MAX),
                ] {
                    check_plan(&layout, k, off, size);
                }
            }
        }
    }
}

/// `ImageLayout::new(head, pair)` and, on success, every invariant of the layout.
/// Returns the layout when it was accepted.
pub fn check_layout_new(head: &[u8], pair: bool) -> Option<ImageLayout> {
    let layout = match ImageLayout::new(head, pair) {
        Ok(l) => l,
        Err(FormatError::NeedMore(n)) => {
            assert!(!pair, "NeedMore({n}) for a pair header");
            assert!(
                n > head.len() as u64,
                "NeedMore({n}) although {} bytes were given",
                head.len()
            );
            assert!(n <= MAX_VOX_OFFSET, "NeedMore({n}) beyond MAX_VOX_OFFSET");
            // Giving what was asked for must settle it (some other answer).
            if n <= 1 << 20 {
                let mut more = head.to_vec();
                more.resize(n as usize, 0);
                match ImageLayout::new(&more, pair) {
                    Err(FormatError::NeedMore(m)) => {
                        panic!("NeedMore({m}) again after supplying the {n} bytes asked for")
                    }
                    Ok(l) => check_layout(&more, pair, &l),
                    Err(_) => {}
                }
            }
            return None;
        }
        Err(e) => {
            // Every refusal renders as one line.
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "bad message {msg:?}"
            );
            return None;
        }
    };
    check_layout(head, pair, &layout);
    Some(layout)
}

fn product(xs: &[i64]) -> u128 {
    xs.iter().map(|&d| d as u128).product()
}

/// Every invariant of an accepted layout.
pub fn check_layout(head: &[u8], pair: bool, l: &ImageLayout) {
    let src = Header::parse(head).expect("layout accepted but Header::parse fails");
    assert_eq!(l.header(), &src, "layout header differs from Header::parse");
    let t = src.table();
    assert_eq!(src.len(), t.len);

    // Shape.
    let shape = l.shape();
    let dims = src.dims();
    assert!((3..=7).contains(&shape.len()), "ndim {}", shape.len());
    assert_eq!(dims[0], shape.len() as i64, "dim[0] vs shape");
    assert_eq!(&dims[1..=shape.len()], &shape[..], "shape vs dims");
    assert!(
        shape.iter().all(|&d| d >= 1),
        "shape {shape:?} has a dim < 1"
    );

    // Datatype.
    let dt: DataType = l.dtype();
    assert_eq!(dt.code, src.datatype_code());
    assert_eq!(datatype::from_code(dt.code), Some(dt));
    assert_eq!(i64::from(src.bitpix()), i64::from(dt.bits), "bitpix");

    // Sizes, computed independently in 128 bits.
    let voxels = product(&shape[..3]);
    let vol_bits = voxels * u128::from(dt.bits);
    assert_eq!(vol_bits % 8, 0, "accepted a volume that is not whole bytes");
    assert_eq!(u128::from(l.vol_bytes()), vol_bits / 8, "vol_bytes");
    let n_vols = product(&shape[3..]);
    assert_eq!(u128::from(l.n_vols()), n_vols, "n_vols");
    assert!(l.n_vols() >= 1);
    let data_bytes = u128::from(l.vol_bytes()) * n_vols;
    assert_eq!(
        u128::from(l.data_bytes()),
        data_bytes,
        "data_bytes overflowed"
    );
    assert!(
        data_bytes + u128::from(l.data_offset()) <= u128::from(u64::MAX),
        "end of data overflows u64"
    );

    // vox_offset.
    let vo = src.vox_offset();
    assert!(
        vo.is_finite() && vo >= 0.0 && vo.fract() == 0.0,
        "vox_offset {vo}"
    );
    assert_eq!(l.data_offset() as f64, vo, "data_offset vs vox_offset");
    assert!(l.data_offset() <= MAX_VOX_OFFSET);
    if !pair {
        assert!(
            l.data_offset() >= t.len as u64 + 4,
            "vox_offset inside header"
        );
        assert!(
            head.len() as u64 >= l.data_offset(),
            "accepted without the bytes up to vox_offset"
        );
    }

    // The volume header.
    let vh = l.vol_header();
    assert_eq!(
        vh.len() as u64 + l.vol_bytes(),
        l.vol_file_size(),
        "vol_file_size"
    );
    assert_eq!(
        vh.len() % 16,
        0,
        "vol_header length {} not a multiple of 16",
        vh.len()
    );
    assert!(
        vh.len() >= t.len + 4,
        "vol_header shorter than header + extender"
    );
    let h = Header::parse(vh).expect("vol_header does not parse");
    assert_eq!(h.version(), src.version());
    assert_eq!(h.big_endian(), src.big_endian());
    assert!(!h.is_pair(), "vol_header has a pair magic");
    assert_eq!(
        h.dims(),
        [3, dims[1], dims[2], dims[3], 1, 1, 1, 1],
        "vol_header dims"
    );
    assert_eq!(h.datatype_code(), src.datatype_code());
    assert_eq!(h.bitpix(), src.bitpix());
    assert_eq!(h.vox_offset(), vh.len() as f64, "vol_header vox_offset");
    let intent = if src.intent_code() == INTENT_TIME_SERIES {
        0
    } else {
        src.intent_code()
    };
    assert_eq!(h.intent_code(), intent, "intent_code");
    // Only dim, vox_offset, intent_code and magic[1] may differ from the source header.
    let patched = |i: usize| {
        let inf = |f: Field| (f.offset..f.offset + f.size()).contains(&i);
        inf(t.dim) || inf(t.vox_offset) || inf(t.intent_code) || i == t.magic.offset + 1
    };
    for (i, (a, b)) in src.bytes().iter().zip(&vh[..t.len]).enumerate() {
        assert!(
            a == b || patched(i),
            "vol_header byte {i} changed: {a:#x} -> {b:#x}"
        );
    }

    // Extensions: the kept ones (all but AFNI's) follow, raw, then zeros.
    let after = if pair {
        &head[t.len..]
    } else {
        &head[t.len..l.data_offset() as usize]
    };
    let exts = parse_extensions(after, src.big_endian()).expect("accepted but extensions fail");
    let kept: Vec<_> = exts.into_iter().filter(|e| e.code != ECODE_AFNI).collect();
    let reparsed = parse_extensions(&vh[t.len..], src.big_endian()).expect("vol_header extensions");
    assert_eq!(
        reparsed, kept,
        "vol_header extensions differ from the kept source ones"
    );
    let ext_bytes: usize = kept.iter().map(|e| e.raw.len()).sum();
    assert_eq!(vh.len(), (t.len + 4 + ext_bytes).next_multiple_of(16));
    if kept.is_empty() {
        assert_eq!(
            &vh[t.len..t.len + 4],
            &[0; 4],
            "extender without extensions"
        );
    } else {
        assert_eq!(&vh[t.len..t.len + 4], &after[..4], "extender not copied");
    }

    // A volume file is itself a valid 3D single-file image with the same header.
    if vh.len() as u64 <= MAX_VOX_OFFSET {
        let v = ImageLayout::new(vh, false).expect("vol_header is not a valid image header");
        assert_eq!(v.n_vols(), 1);
        assert_eq!(v.vol_bytes(), l.vol_bytes());
        assert_eq!(v.data_offset(), vh.len() as u64);
        assert_eq!(v.vol_header(), vh, "vol_header is not a fixed point");
        assert_eq!(v.dtype(), l.dtype());
    }

    // Volume ranges tile the data.
    for k in [0, l.n_vols() / 2, l.n_vols() - 1] {
        let r = l
            .vol_source_range(k)
            .expect("volume k < n_vols has no range");
        assert_eq!(r.start, l.data_offset() + k * l.vol_bytes());
        assert_eq!(r.end - r.start, l.vol_bytes());
    }
    assert_eq!(l.vol_source_range(l.n_vols()), None);
    assert_eq!(l.vol_source_range(u64::MAX), None);
}

/// Every invariant of one `plan_read`.
pub fn check_plan(l: &ImageLayout, k: u64, offset: u64, size: u32) {
    let p = l.plan_read(k, offset, size);
    let empty = |r: &Range<u64>| r.is_empty() && *r == (0..0);
    assert!(
        p.header.is_empty() == (p.header == (0..0)),
        "empty header range not 0..0: {p:?}"
    );
    assert!(
        p.data.is_empty() == empty(&p.data),
        "empty data range not 0..0: {p:?}"
    );
    let Some(src) = l.vol_source_range(k) else {
        assert!(k >= l.n_vols());
        assert_eq!(p, Default::default(), "plan for a missing volume {k}");
        return;
    };
    assert!(k < l.n_vols());
    let fsz = l.vol_file_size();
    let hlen = l.vol_header().len() as u64;
    let want = if offset >= fsz {
        0
    } else {
        u64::from(size).min(fsz - offset)
    };
    let got = p.header.len() as u64 + (p.data.end - p.data.start);
    assert_eq!(
        got, want,
        "plan {p:?} for k={k} offset={offset} size={size}, file {fsz}"
    );
    if !p.header.is_empty() {
        assert_eq!(
            p.header.start as u64, offset,
            "header range does not start at offset"
        );
        assert!(p.header.end as u64 <= hlen, "header range past vol_header");
    }
    if !p.data.is_empty() {
        assert!(
            p.data.start >= src.start && p.data.end <= src.end,
            "data {:?} outside volume {k}'s source range {src:?}",
            p.data
        );
        assert_eq!(
            p.data.start - src.start,
            offset.max(hlen) - hlen,
            "data range start"
        );
        if !p.header.is_empty() {
            assert_eq!(
                p.header.end as u64, hlen,
                "gap between header and data ranges"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Target 2: layout — a generated valid header with fuzzed fields, then reads.

/// Store `v` into element `i` of field `f` of a header being built.
pub fn put(bytes: &mut [u8], f: Field, i: usize, v: f64, big: bool) {
    let at = f.offset + i * f.kind.size();
    let mut le: Vec<u8> = match f.kind {
        Kind::U8 => vec![v as u8],
        Kind::I16 => (v as i16).to_le_bytes().to_vec(),
        Kind::I32 => (v as i32).to_le_bytes().to_vec(),
        Kind::I64 => (v as i64).to_le_bytes().to_vec(),
        Kind::F32 => (v as f32).to_le_bytes().to_vec(),
        Kind::F64 => v.to_le_bytes().to_vec(),
    };
    if big {
        le.reverse();
    }
    bytes[at..at + le.len()].copy_from_slice(&le);
}

/// A NIfTI header's bytes (348 or 540) with the given fields, everything else zero.
pub fn make_header(
    v2: bool,
    big: bool,
    pair: bool,
    dims: [i64; 8],
    datatype: i16,
    bitpix: i16,
    vox_offset: f64,
) -> Vec<u8> {
    let t: &FieldTable = if v2 { &NIFTI2 } else { &NIFTI1 };
    let mut b = vec![0u8; t.len];
    put(&mut b, t.sizeof_hdr, 0, t.len as f64, big);
    for (i, d) in dims.iter().enumerate() {
        put(&mut b, t.dim, i, *d as f64, big);
    }
    put(&mut b, t.datatype, 0, f64::from(datatype), big);
    put(&mut b, t.bitpix, 0, f64::from(bitpix), big);
    put(&mut b, t.vox_offset, 0, vox_offset, big);
    put(&mut b, t.pixdim, 0, 1.0, big);
    let magic: &[u8] = match (v2, pair) {
        (false, false) => b"n+1\0",
        (false, true) => b"ni1\0",
        (true, false) => b"n+2\0\r\n\x1a\n",
        (true, true) => b"ni2\0\r\n\x1a\n",
    };
    b[t.magic.offset..t.magic.offset + magic.len()].copy_from_slice(magic);
    b
}

/// One extension record of `esize` bytes (a multiple of 16) with code `ecode`.
pub fn make_extension(esize: usize, ecode: i32, big: bool, fill: u8) -> Vec<u8> {
    let mut e = vec![fill; esize];
    let (s, c) = if big {
        ((esize as i32).to_be_bytes(), ecode.to_be_bytes())
    } else {
        ((esize as i32).to_le_bytes(), ecode.to_le_bytes())
    };
    e[..4].copy_from_slice(&s);
    e[4..8].copy_from_slice(&c);
    e
}

/// Decode a fuzz input into a (mostly) valid image start: header, extender,
/// extensions, padding. Returns the bytes and whether it is a pair header.
pub fn generate_image_start(inp: &mut Input) -> (Vec<u8>, bool) {
    let flags = inp.u8();
    let (v2, big, pair) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let raw_dims = flags & 8 != 0; // else dims kept small and valid
    let raw_dtype = flags & 16 != 0; // else a known datatype with matching bitpix
    let n_ext = (flags >> 5) & 3;
    let ndim = 3 + i64::from(inp.u8() % 5);
    let mut dims = [1i64; 8];
    dims[0] = ndim;
    for d in dims.iter_mut().skip(1) {
        let x = if v2 {
            inp.u64() as i64
        } else {
            i64::from(inp.u16() as i16)
        };
        *d = if raw_dims {
            x
        } else {
            1 + (x.unsigned_abs() % 300) as i64
        };
    }
    if raw_dims {
        dims[0] = i64::from(inp.u8() as i8);
    }
    let (code, bitpix) = if raw_dtype {
        (inp.u16() as i16, inp.u16() as i16)
    } else {
        let t = datatype::ALL[usize::from(inp.u8()) % datatype::ALL.len()];
        (t.code, t.bits as i16)
    };
    let mut exts = Vec::new();
    for _ in 0..n_ext {
        let esize = 16 * (1 + usize::from(inp.u8() % 8));
        let ecode = match inp.u8() % 4 {
            0 => ECODE_AFNI,
            1 => 6,
            2 => 0,
            _ => inp.u32() as i32,
        };
        exts.extend(make_extension(esize, ecode, big, inp.u8()));
    }
    let t: &FieldTable = if v2 { &NIFTI2 } else { &NIFTI1 };
    let natural = (t.len + 4 + exts.len()).next_multiple_of(16);
    let vo_sel = inp.u8();
    let vox_offset = match vo_sel % 8 {
        0..=2 => natural as f64,
        3 => (natural + 16 * usize::from(inp.u8())) as f64,
        4 => f64::from(inp.u32()),
        5 => f64::from(f32::from_bits(inp.u32())),
        6 => 0.0,
        _ => (natural as f64) + 0.5,
    };
    let mut b = make_header(v2, big, pair, dims, code, bitpix, vox_offset);
    let extender = [u8::from(n_ext > 0), 0, 0, 0];
    b.extend_from_slice(&extender);
    b.extend_from_slice(&exts);
    if !pair && vox_offset.is_finite() && vox_offset >= b.len() as f64 && vox_offset <= 1e6 {
        // Usually the caller read exactly up to vox_offset; sometimes it's short.
        let want = vox_offset as usize;
        let cut = if vo_sel & 0x80 != 0 {
            want.saturating_sub(1 + usize::from(inp.u8()))
        } else {
            want
        };
        b.resize(cut.max(b.len()), 0);
    }
    (b, pair)
}

pub fn check_layout_target(data: &[u8]) {
    let mut inp = Input::new(data);
    let (head, pair) = generate_image_start(&mut inp);
    let Some(l) = check_layout_new(&head, pair) else {
        return;
    };
    // Fuzzed reads, plus reads around the header/data boundary and the end.
    let n = l.n_vols();
    let fsz = l.vol_file_size();
    let hlen = l.vol_header().len() as u64;
    while !inp.b.is_empty() {
        let sel = inp.u8();
        let k = match sel & 3 {
            0 => inp.u64(),
            1 => inp.u64() % n,
            2 => n - 1,
            _ => n,
        };
        let offset = match (sel >> 2) & 7 {
            0 => inp.u64(),
            1 => inp.u64() % fsz.saturating_add(1),
            2 => hlen.saturating_sub(u64::from(inp.u8())),
            3 => hlen + u64::from(inp.u8()),
            4 => fsz.saturating_sub(u64::from(inp.u16())),
            5 => fsz,
            6 => u64::MAX - u64::from(inp.u8()),
            _ => 0,
        };
        let size = if sel & 0x80 != 0 {
            inp.u32()
        } else {
            u32::from(inp.u16())
        };
        check_plan(&l, k, offset, size);
    }
}

// ---------------------------------------------------------------------------
// Reference gzip decoding (flate2), mirroring nifuse's rule for trailing bytes.

/// What flate2 makes of a whole gzip file, member by member: the output it
/// produced and whether the whole file decoded. After at least one member,
/// bytes that cannot start a gzip header (fewer than 10, or not `1f 8b`) are
/// trailing garbage and ignored, as gzip(1) and nifuse do.
/// `None` if the output would exceed `cap` bytes (no verdict then). Members
/// with reserved flag bits or a method other than deflate are errors (RFC 1952;
/// gzip(1) and nifuse refuse them).
pub fn reference_gunzip(data: &[u8], cap: usize) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut members = 0;
    loop {
        if rest.is_empty() {
            return Some((out, members > 0));
        }
        if members > 0 && (rest.len() < 10 || rest[0] != 0x1f || rest[1] != 0x8b) {
            return Some((out, true));
        }
        if rest.len() >= 4 && (rest[2] != 8 || rest[3] & 0xe0 != 0) {
            return Some((out, false));
        }
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        let mut buf = [0u8; 8192];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return Some((out, false)),
            }
            if out.len() > cap {
                return None;
            }
        }
        rest = dec.into_inner();
        members += 1;
    }
}

/// A per-process scratch directory: under `target/tmp` in `cargo test`, else
/// under `$NIFUSE_FUZZ_SCRATCH` (scripts/fuzz sets it and removes it afterwards)
/// or the system temp dir.
pub fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        #[cfg(test)] // cargo test: under target/tmp, not /tmp
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        #[cfg(not(test))]
        let base =
            std::env::var_os("NIFUSE_FUZZ_SCRATCH").map_or_else(std::env::temp_dir, PathBuf::from);
        let d = base.join(format!("nifuse-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
    .clone()
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create scratch file");
    f.write_all(bytes).expect("write scratch file");
}

// ---------------------------------------------------------------------------
// Target 3: gzip_stream — fuzzed gzip bytes through GzAccess vs flate2.

/// Input: 8 bytes of read-pattern seed, 1 byte of mode, then the gzip file.
pub fn check_gzip_stream(data: &[u8]) {
    let mut inp = Input::new(data);
    let seed = inp.u64();
    let mode = inp.u8();
    let gz = inp.rest();
    // One file per thread: `cargo test` runs checks in parallel threads.
    let path = scratch_dir().join(format!("stream-{:?}.gz", std::thread::current().id()));
    write_file(&path, gz);
    let Some((reference, ref_ok)) = reference_gunzip(gz, 8 << 20) else {
        // Too big to compare cheaply: only "no panic" for a few reads.
        let acc = GzAccess::open(&path, vec![0], None).expect("open");
        let mut b = vec![0u8; 4096];
        let _ = acc.read_exact_at(u64::from(mode) << 12, &mut b);
        return;
    };
    let total = reference.len() as u64;
    let mut rng = Rng::new(seed);

    let starts: Vec<u64> = match mode & 3 {
        0 => vec![0],
        1 => vec![],
        2 => {
            let mut s: Vec<u64> = (0..1 + rng.below(6))
                .map(|_| rng.below(total + 2))
                .collect();
            s.sort();
            s.dedup();
            s
        }
        _ => (0..8)
            .map(|i| i * total / 8)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let acc = GzAccess::open(&path, starts.clone(), None).expect("open of an existing file fails");

    // Bytes GzAccess hands out must be the reference's bytes, wherever both exist.
    let check_read = |acc: &GzAccess, off: u64, len: usize, what: &str| {
        let mut buf = vec![0xa5u8; len];
        let r = acc.read_exact_at(off, &mut buf);
        if r.is_ok() && len > 0 {
            let end = off + len as u64;
            if ref_ok {
                assert!(
                    end <= total,
                    "{what}: read {off}+{len} succeeded past the end of the data ({total} bytes)"
                );
            }
            let lo = off.min(total) as usize;
            let hi = end.min(total) as usize;
            assert!(
                buf[..hi - lo] == reference[lo..hi],
                "{what}: read {off}+{len} returned wrong bytes (reference ok={ref_ok}, total {total})"
            );
        }
        if ref_ok && len > 0 && off + (len as u64) <= total {
            // A stream flate2 fully decodes must serve every byte.
            assert!(
                r.is_ok(),
                "{what}: read {off}+{len} of a valid stream failed: {:?}",
                r.err()
            );
        }
        r
    };

    let reads = 1 + rng.below(6);
    for _ in 0..reads {
        let off = match rng.below(5) {
            0 => 0,
            1 => rng.below(total + 1),
            2 => total.saturating_sub(rng.below(64)),
            3 => starts
                .get(rng.below(starts.len() as u64 + 1) as usize)
                .copied()
                .unwrap_or(0),
            _ => rng.below(total + 70_000),
        };
        let len = match rng.below(4) {
            0 => 1,
            1 => rng.below(64) as usize,
            2 => rng.below(40_000) as usize,
            _ => (total.saturating_sub(off)) as usize,
        };
        let _ = check_read(&acc, off, len.min(1 << 20), "before build_all");
    }

    let built = acc.build_all(&mut |_, _| {});
    if ref_ok {
        assert!(
            built.is_ok(),
            "build_all fails on a stream flate2 decodes: {:?}",
            built.err()
        );
    }
    if built.is_ok() {
        // Complete index: the whole stream verified. It must agree with flate2.
        assert!(
            ref_ok,
            "build_all accepted a stream flate2 rejects (flate2 decoded {total} bytes first)"
        );
        let mut all = vec![0u8; total as usize];
        acc.read_exact_at(0, &mut all)
            .expect("read of all data after build_all");
        assert!(
            all == reference,
            "whole-stream read after build_all differs from flate2"
        );
        let mut one = [0u8; 1];
        assert!(
            matches!(
                acc.read_exact_at(total, &mut one),
                Err(GzError::OutOfRange { .. })
            ),
            "read at the end of a complete stream is not OutOfRange"
        );
    }
    for _ in 0..1 + rng.below(4) {
        let off = rng.below(total + 2);
        let len = rng.below(5000) as usize;
        let _ = check_read(&acc, off, len, "after build_all");
    }
    // A fresh instance reading backwards (cursor reuse and checkpoints).
    let acc2 = GzAccess::open(&path, starts, None).expect("reopen");
    let mut off = total;
    while off > 0 {
        let step = 1 + rng.below(total / 3 + 1);
        off = off.saturating_sub(step);
        let _ = check_read(&acc2, off, (step as usize).min(4096), "backwards");
    }
}

// ---------------------------------------------------------------------------
// Target 4: gzip_index — fuzzed index files loaded for a known-good gzip.

/// The known-good gzip used by the index target: uncompressed bytes, path,
/// the volume starts, and a valid saved index for them.
pub struct GoodGzip {
    pub plain: Vec<u8>,
    pub path: PathBuf,
    pub starts: Vec<u64>,
    pub index_dir: PathBuf,
    pub index_file: PathBuf,
    pub index_bytes: Vec<u8>,
    /// Length of the index file's payload prefix that holds the key and starts digest.
    pub key_prefix_len: usize,
}

/// Compressible but not trivial data, with several deflate blocks.
pub fn good_plain(size: usize) -> Vec<u8> {
    let mut rng = Rng::new(42);
    let mut v = Vec::with_capacity(size + 64);
    while v.len() < size {
        let word = rng.below(40);
        let rep = 1 + rng.below(30);
        for _ in 0..rep {
            v.extend_from_slice(format!("w{word} ").as_bytes());
        }
        v.push((rng.next() & 0xff) as u8);
    }
    v
}

/// gzip `plain` as `members` members, with a sync flush (block boundary) every `flush` bytes.
pub fn gzip_bytes(plain: &[u8], members: usize, flush: usize, level: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let per = plain.len().div_ceil(members.max(1)).max(1);
    for chunk in plain.chunks(per) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        for piece in chunk.chunks(flush.max(1)) {
            e.write_all(piece).unwrap();
            e.flush().unwrap();
        }
        out.extend(e.finish().unwrap());
    }
    out
}

pub fn good_gzip() -> &'static GoodGzip {
    static G: OnceLock<GoodGzip> = OnceLock::new();
    G.get_or_init(|| {
        let plain = good_plain(64_000);
        let dir = scratch_dir().join("good");
        let index_dir = dir.join("index");
        std::fs::create_dir_all(&index_dir).unwrap();
        let path = dir.join("good.nii.gz");
        write_file(&path, &gzip_bytes(&plain, 2, 3000, 6));
        let starts = vec![0, 20_000, 40_000, 63_000];
        let acc = GzAccess::open(&path, starts.clone(), Some(&index_dir)).unwrap();
        acc.build_all(&mut |_, _| {}).unwrap();
        // Read a bit so the index has checkpoints everywhere, then save.
        let mut b = vec![0u8; 100];
        acc.read_exact_at(50_000, &mut b).unwrap();
        acc.save().unwrap();
        let index_file = acc.index_path().unwrap().to_path_buf();
        drop(acc);
        let index_bytes = std::fs::read(&index_file).unwrap();
        let key = IndexKey::for_file(&path).unwrap();
        let key_prefix_len = 4 + key.path.as_os_str().len() + 8 + 16 + 8 + 8 + 4;
        GoodGzip {
            plain,
            path,
            starts,
            index_dir,
            index_file,
            index_bytes,
            key_prefix_len,
        }
    })
}

/// Wrap an index payload in the file header (magic, version, length, CRC-32).
pub fn index_file_from_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + payload.len());
    out.extend_from_slice(b"NIFUSEGZ");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Input: 1 mode byte, 8 bytes of read seed, then
///   mode%3 == 0: the whole index file, as is;
///   mode%3 == 1: the payload after the (correct) key and starts digest; header and CRC fixed up;
///   mode%3 == 2: the whole payload; header and CRC fixed up.
/// Reads must give the right bytes (or fail only past the end) unless a forged
/// file (valid CRC, other content) was loaded: nifuse trusts the CRC, so then only
/// "no panic, no hang" is asserted, unless `NIFUSE_FUZZ_STRICT_INDEX` is set.
pub fn check_gzip_index(data: &[u8]) {
    // The index file's name is fixed by the good gzip's key: one check at a time.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let g = good_gzip();
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let seed = inp.u64();
    let body = inp.rest();
    let file = match mode % 3 {
        0 => body.to_vec(),
        1 => {
            let prefix = &g.index_bytes[24..24 + g.key_prefix_len];
            index_file_from_payload(&[prefix, body].concat())
        }
        _ => index_file_from_payload(body),
    };
    let _ = std::fs::remove_file(&g.index_dir);
    let _ = std::fs::create_dir_all(&g.index_dir);
    write_file(&g.index_file, &file);
    // Load through the real path (GzAccess::open with an index dir), then put a
    // plain file where the index dir was: saves (on Drop) then fail at once
    // instead of writing and fsyncing an index per input, and nothing leaks into
    // the next input.
    let acc = GzAccess::open(&g.path, g.starts.clone(), Some(&g.index_dir))
        .expect("open must not fail because of a bad index");
    let _ = std::fs::remove_dir_all(&g.index_dir);
    write_file(&g.index_dir, b"not a directory");
    // Strict (right bytes or an error past the end) unless a forged file was
    // actually loaded: nifuse trusts an index whose CRC-32 matches.
    let loaded = acc.state() != IndexState::None;
    let strict =
        !loaded || file == g.index_bytes || std::env::var_os("NIFUSE_FUZZ_STRICT_INDEX").is_some();
    let total = g.plain.len() as u64;
    let mut rng = Rng::new(seed);
    for i in 0..1 + rng.below(6) {
        let off = match rng.below(3) {
            0 => g.starts[rng.below(g.starts.len() as u64) as usize],
            1 => rng.below(total),
            _ => total - rng.below(100).min(total),
        };
        let len = (1 + rng.below(3000)).min(total + 10 - off) as usize;
        let mut buf = vec![0u8; len];
        let r = acc.read_exact_at(off, &mut buf);
        let end = off + len as u64;
        match r {
            Ok(()) => {
                if strict {
                    assert!(end <= total, "read {i}: {off}+{len} past the end succeeded");
                    assert!(
                        buf[..] == g.plain[off as usize..end as usize],
                        "read {i}: {off}+{len} returned wrong bytes with a loaded index"
                    );
                }
            }
            Err(_) if !strict => {}
            Err(e) => {
                assert!(
                    end > total,
                    "read {i}: {off}+{len} failed with a genuine index: {e}"
                );
            }
        }
    }
    if strict {
        acc.build_all(&mut |_, _| {})
            .expect("build_all on a good gzip");
        let mut all = vec![0u8; total as usize];
        acc.read_exact_at(0, &mut all).expect("full read");
        assert!(all == g.plain, "full read after build_all differs");
    } else {
        let _ = acc.build_all(&mut |_, _| {});
    }
    drop(acc);
}

// ---------------------------------------------------------------------------
// Seeds (used by `fuzz/seeds.rs` to write the initial corpora).

/// (target, name, bytes) seed inputs for every target.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    // header: valid single files and pairs of both versions and byte orders, with extensions.
    for v2 in [false, true] {
        for big in [false, true] {
            for pair in [false, true] {
                for with_ext in [false, true] {
                    let t: &FieldTable = if v2 { &NIFTI2 } else { &NIFTI1 };
                    let exts = if with_ext {
                        [
                            make_extension(32, 6, big, b'x'),
                            make_extension(16, ECODE_AFNI, big, b'a'),
                        ]
                        .concat()
                    } else {
                        vec![]
                    };
                    let vo = (t.len + 4 + exts.len()).next_multiple_of(16);
                    let mut b = make_header(
                        v2,
                        big,
                        pair,
                        [4, 4, 5, 6, 7, 1, 1, 1],
                        4,
                        16,
                        if pair { 0.0 } else { vo as f64 },
                    );
                    b.extend_from_slice(&[u8::from(with_ext), 0, 0, 0]);
                    b.extend_from_slice(&exts);
                    b.resize(if pair { b.len() } else { vo }, 0);
                    out.push((
                        "header",
                        format!(
                            "v{}-{}-{}-{}",
                            if v2 { 2 } else { 1 },
                            if big { "be" } else { "le" },
                            if pair { "pair" } else { "single" },
                            if with_ext { "ext" } else { "noext" }
                        ),
                        b,
                    ));
                }
            }
        }
    }
    // layout: flags x a few parameter sets.
    for flags in [0u8, 1, 2, 3, 4, 0x20, 0x41, 0x62] {
        let mut b = vec![flags, 1];
        b.extend(std::iter::repeat_n(7u8, 64));
        b.extend([0x85, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0xff, 0x00]);
        out.push(("layout", format!("flags{flags:02x}"), b));
    }
    // gzip_stream: several encodings of some data.
    let plain = good_plain(40_000);
    let variants: [(&str, Vec<u8>); 6] = [
        ("one-member", gzip_bytes(&plain, 1, 1 << 30, 6)),
        ("three-members-flushes", gzip_bytes(&plain, 3, 3000, 6)),
        ("stored", gzip_bytes(&plain[..5000], 1, 1 << 30, 0)),
        ("empty", gzip_bytes(&[], 1, 1 << 30, 6)),
        (
            "small",
            gzip_bytes(b"hello, hello, hello nifuse\n", 2, 5, 9),
        ),
        (
            "trailing-zeros",
            [gzip_bytes(&plain[..3000], 1, 700, 1), vec![0; 16]].concat(),
        ),
    ];
    for (name, gz) in variants {
        for mode in [0u8, 2, 3] {
            let mut b = 0x1234_5678_9abc_def0u64
                .wrapping_add(u64::from(mode))
                .to_le_bytes()
                .to_vec();
            b.push(mode);
            b.extend_from_slice(&gz);
            out.push(("gzip_stream", format!("{name}-m{mode}"), b));
        }
    }
    // gzip_index: the genuine index in each mode.
    let g = good_gzip();
    let seed = 7u64.to_le_bytes();
    out.push((
        "gzip_index",
        "raw-genuine".into(),
        [&[0u8][..], &seed, &g.index_bytes].concat(),
    ));
    out.push((
        "gzip_index",
        "tail-genuine".into(),
        [&[1u8][..], &seed, &g.index_bytes[24 + g.key_prefix_len..]].concat(),
    ));
    out.push((
        "gzip_index",
        "payload-genuine".into(),
        [&[2u8][..], &seed, &g.index_bytes[24..]].concat(),
    ));
    out
}

/// Dispatch by target name (for the regression test).
pub fn check(target: &str, data: &[u8]) {
    match target {
        "header" => check_header(data),
        "layout" => check_layout_target(data),
        "gzip_stream" => check_gzip_stream(data),
        "gzip_index" => check_gzip_index(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

/// Unused imports guard (keeps `Version` referenced for readers of this file).
pub fn _version_names() -> [Version; 2] {
    [Version::Nifti1, Version::Nifti2]
}
