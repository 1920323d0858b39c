//! Target `gzip_stream`: random access through `GzAccess` against a flate2
//! reference decode.

#![allow(unused_imports)]

use super::*;

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

pub(crate) fn write_file(path: &Path, bytes: &[u8]) {
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
