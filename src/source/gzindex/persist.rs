//! On-disk format of the gzip index (all integers little-endian).
//!
//! ```text
//! header : magic "NIFUSEGZ" | version u32 (=3) | payload_len u64 | crc32(payload) u32
//! payload: locator_len u32 | locator bytes | size u64 | tag_len u32 | tag bytes
//!          starts_count u64 | starts_crc u32          (digest of the requested starts)
//!          complete u8 | total u64
//!          n u32, then n checkpoints:
//!            out u64 | bitpos u64 | member_out u64 | crc u32 | flags u8
//!            (1 = member start, 2 = window stored raw) | window_len u32
//!            | data_len u32 | data (raw-deflated window, or raw bytes)
//!          n_segs u32, then n_segs segments: len u32 | crc32 u32   (from 0 on)
//!          n_members u32, then verified members: len u64 | crc32 u32 (from 0 on)
//! ```
//! Version 2 had no segments or members: such files are rebuilt. The file
//! is written to a temp file in the same directory and renamed into place.
//! On load, anything unexpected (magic, version, length, checksum, key,
//! starts, bounds, window sizes, ordering, segment CRCs that do not combine
//! into the member and checkpoint CRCs) makes the file ignored.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compression, Decompress, FlushDecompress, Status};

use super::index::{Checkpoint, Index, Member, Seg, UNKNOWN_IN};
use super::zlib::WINDOW_SIZE;
use super::{GzError, IndexKey};

const MAGIC: &[u8; 8] = b"NIFUSEGZ";
pub const VERSION: u32 = 3;
const HEADER_LEN: usize = 24;
/// Refuse to even read index files larger than this.
const MAX_FILE: u64 = 1 << 30;

fn fnv64(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// `<file name, sanitised>-<64-bit hash of the whole key>.gzidx`
pub fn file_name(key: &IndexKey) -> String {
    let mut h = fnv64(key.locator.as_bytes(), 0xcbf2_9ce4_8422_2325);
    h = fnv64(&key.size.to_le_bytes(), h);
    h = fnv64(key.tag.as_bytes(), h);
    let stem: String = key
        .locator
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!("{stem}-{h:016x}.gzidx")
}

fn starts_crc(starts: &[u64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for s in starts {
        h.update(&s.to_le_bytes());
    }
    h.finalize()
}

/// Appends `bytes` with their length (u32) before them.
fn put_bytes(p: &mut Vec<u8>, bytes: &[u8]) -> Result<(), GzError> {
    let len = u32::try_from(bytes.len()).map_err(|_| GzError::BadIndex("key too long".into()))?;
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(bytes);
    Ok(())
}

fn pack(window: &[u8]) -> Result<Arc<[u8]>, GzError> {
    let mut e =
        flate2::write::DeflateEncoder::new(Vec::with_capacity(window.len()), Compression::new(6));
    e.write_all(window)?;
    Ok(Arc::from(e.finish()?))
}

/// Serialise `index` for `key`.
pub fn encode(key: &IndexKey, index: &Index) -> Result<Vec<u8>, GzError> {
    let mut p = Vec::new();
    put_bytes(&mut p, key.locator.as_bytes())?;
    p.extend_from_slice(&key.size.to_le_bytes());
    put_bytes(&mut p, key.tag.as_bytes())?;
    p.extend_from_slice(&(index.starts.len() as u64).to_le_bytes());
    p.extend_from_slice(&starts_crc(&index.starts).to_le_bytes());
    p.push(u8::from(index.total.is_some()));
    p.extend_from_slice(&index.total.unwrap_or(0).to_le_bytes());
    let n = u32::try_from(index.cps.len())
        .map_err(|_| GzError::BadIndex("too many checkpoints".into()))?;
    p.extend_from_slice(&n.to_le_bytes());
    for c in &index.cps {
        let packed = match c.packed.get() {
            Some(d) => d.clone(),
            None => {
                let d = pack(&c.window)?;
                let _ = c.packed.set(d.clone());
                d
            }
        };
        let raw = packed.len() >= c.window.len();
        let data: &[u8] = if raw { &c.window } else { &packed };
        p.extend_from_slice(&c.out.to_le_bytes());
        p.extend_from_slice(&c.bitpos.to_le_bytes());
        p.extend_from_slice(&c.member_out.to_le_bytes());
        p.extend_from_slice(&c.crc.to_le_bytes());
        p.push(u8::from(c.member_start) | if raw { 2 } else { 0 });
        p.extend_from_slice(&(c.window.len() as u32).to_le_bytes());
        p.extend_from_slice(&(data.len() as u32).to_le_bytes());
        p.extend_from_slice(data);
    }
    let too_many = || GzError::BadIndex("too many segments".into());
    p.extend_from_slice(
        &u32::try_from(index.segs.len())
            .map_err(|_| too_many())?
            .to_le_bytes(),
    );
    let mut from = 0;
    for s in &index.segs {
        let len = s.end.checked_sub(from).and_then(|l| u32::try_from(l).ok());
        let len = len.ok_or_else(|| GzError::BadIndex("unordered or long segment".into()))?;
        p.extend_from_slice(&len.to_le_bytes());
        p.extend_from_slice(&s.crc.to_le_bytes());
        from = s.end;
    }
    p.extend_from_slice(
        &u32::try_from(index.members.len())
            .map_err(|_| too_many())?
            .to_le_bytes(),
    );
    for m in &index.members {
        p.extend_from_slice(&m.end.saturating_sub(m.start).to_le_bytes());
        p.extend_from_slice(&m.crc.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_LEN + p.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(p.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
    Ok(out)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write the index atomically to `target`.
pub fn save(target: &Path, key: &IndexKey, index: &Index) -> Result<(), GzError> {
    let bytes = encode(key, index)?;
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(GzError::Io(e));
    }
    Ok(())
}

/// Load the index at `path` if it exists and is valid for `key` and `starts`.
/// `Ok(None)`: no file. `Err(reason)`: the file exists but must be ignored.
pub fn load(path: &Path, key: &IndexKey, starts: &[u64]) -> Result<Option<Index>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    decode(&bytes, key, starts).map(Some)
}

struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.b.len() {
            return Err("truncated index".into());
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
}

fn unpack(data: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; len + 1];
    let mut d = Decompress::new(false);
    let st = d
        .decompress(data, &mut out, FlushDecompress::Finish)
        .map_err(|e| format!("bad window data: {e}"))?;
    if st != Status::StreamEnd || d.total_out() != len as u64 || d.total_in() != data.len() as u64 {
        return Err("window data has the wrong length".into());
    }
    out.truncate(len);
    Ok(out)
}

/// Parse and validate an index file's bytes.
pub fn decode(bytes: &[u8], key: &IndexKey, starts: &[u64]) -> Result<Index, String> {
    let mut r = Rd { b: bytes };
    if r.take(8)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!("format version {version}, expected {VERSION}"));
    }
    let len = r.u64()?;
    let crc = r.u32()?;
    if len != r.b.len() as u64 {
        return Err(format!("payload is {} bytes, header says {len}", r.b.len()));
    }
    if crc32fast::hash(r.b) != crc {
        return Err("checksum mismatch".into());
    }
    let locator_len = r.u32()? as usize;
    let locator = r.take(locator_len)?;
    let size = r.u64()?;
    let tag_len = r.u32()? as usize;
    let tag = r.take(tag_len)?;
    if locator != key.locator.as_bytes() || size != key.size || tag != key.tag.as_bytes() {
        return Err("stale index (source path, size or version differ)".into());
    }
    if r.u64()? != starts.len() as u64 || r.u32()? != starts_crc(starts) {
        return Err("index was built for different volume starts".into());
    }
    let complete = r.u8()?;
    let total = r.u64()?;
    let n = r.u32()?;
    let mut index = Index::new(starts.to_vec());
    index.total = match complete {
        0 => None,
        1 => Some(total),
        _ => return Err("bad completion flag".into()),
    };
    for _ in 0..n {
        let out = r.u64()?;
        let bitpos = r.u64()?;
        let member_out = r.u64()?;
        let crc = r.u32()?;
        let flags = r.u8()?;
        let wlen = r.u32()? as usize;
        let dlen = r.u32()? as usize;
        if flags & !3 != 0 || wlen > WINDOW_SIZE {
            return Err(format!("bad checkpoint at {out}"));
        }
        let data = r.take(dlen)?;
        let (window, packed): (Arc<[u8]>, Option<Arc<[u8]>>) = if flags & 2 != 0 {
            if dlen != wlen {
                return Err(format!("bad raw window at {out}"));
            }
            (Arc::from(data), None)
        } else {
            (Arc::from(unpack(data, wlen)?), Some(Arc::from(data)))
        };
        let cp = Checkpoint::new(out, bitpos, member_out, crc, flags & 1 != 0, window);
        if let Some(d) = packed {
            let _ = cp.packed.set(d);
        }
        index.cps.push(cp);
    }
    let n_segs = r.u32()?;
    let mut end = 0u64;
    for _ in 0..n_segs {
        let len = u64::from(r.u32()?);
        end = end.checked_add(len).ok_or("segment lengths overflow")?;
        let crc = r.u32()?;
        index.segs.push(Seg {
            end,
            crc,
            in_end: UNKNOWN_IN,
        });
    }
    let n_members = r.u32()?;
    let mut start = 0u64;
    for _ in 0..n_members {
        let len = r.u64()?;
        let end = start.checked_add(len).ok_or("member lengths overflow")?;
        let crc = r.u32()?;
        index.members.push(Member { start, end, crc });
        start = end;
    }
    if !r.b.is_empty() {
        return Err("trailing bytes after the checkpoints".into());
    }
    index.validate(key.size)?;
    Ok(index)
}
