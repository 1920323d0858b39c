//! Target `gzip_index`: fuzzed index files through the real loader.

#![allow(unused_imports)]

use super::*;

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
        let key_prefix_len = 4 + key.locator.len() + 8 + 4 + key.tag.len() + 8 + 4;
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
    out.extend_from_slice(&nifuse::source::gzindex::INDEX_FORMAT_VERSION.to_le_bytes());
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
/// file (valid CRC, other content) was loaded; even then a read that succeeds
/// must give the right bytes (every decoded segment is checked against the
/// index's CRCs, and a mismatch fails the read and discards the index). A
/// forged index that is consistent in itself can still claim a shorter stream
/// (nifuse trusts the index directory, SPEC 5), so then a full read may fail.
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
                assert!(end <= total, "read {i}: {off}+{len} past the end succeeded");
                assert!(
                    buf[..] == g.plain[off as usize..end as usize],
                    "read {i}: {off}+{len} returned wrong bytes"
                );
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
    acc.build_all(&mut |_, _| {})
        .expect("build_all on a good gzip");
    let mut all = vec![0u8; total as usize];
    let mut r = acc.read_exact_at(0, &mut all);
    if r.is_err() {
        assert!(!strict, "full read failed with a genuine index: {r:?}");
        // A forged index: a segment mismatch discarded it; rebuilt now.
        r = acc.read_exact_at(0, &mut all);
    }
    assert!(r.is_err() || all == g.plain, "full read differs");
    drop(acc);
}
