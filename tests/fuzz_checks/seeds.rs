//! Seeds for the fuzz corpora, and dispatch of an input to its target's check.

#![allow(unused_imports)]

use super::*;

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
