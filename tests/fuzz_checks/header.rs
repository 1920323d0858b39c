//! Targets `header` and `layout`: header parsing, the synthesized volume
//! header, layout arithmetic and `plan_read`, plus the header builders.

#![allow(unused_imports)]

use super::*;

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

pub(crate) fn product(xs: &[i64]) -> u128 {
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
